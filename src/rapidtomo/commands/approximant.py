"""``rapidtomo approximant``: the network's input volume from a (reduced-angle) scan."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings
from ..errors import UserError
from ..io import read_scan, write_volume
from ..runinfo import Timer, provenance, write_run_info

HELP = "reconstruct the approximant (a few multislice gradient steps, 2x coarser in x and y)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scan", type=Path, help="scan file (.h5), e.g. scan_reduced.h5")
    p.add_argument("-o", "--out", type=Path, required=True, help="output volume file (.h5); settings and "
                   "timings go to OUT with suffix .json")
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [approximant])")
    p.add_argument("--iterations", type=int, help="gradient iterations k (default 2, as in the paper)")
    p.add_argument("--n-slabs", type=int, help="slabs L along z (default 5)")
    p.add_argument("--output-slices", type=int, help="z slices of the dilated output (default: nominal Z)")
    p.add_argument("--optimizer", choices=["gd", "adam"], help="gd (line search) or adam")
    p.add_argument("--batch-size", type=int, help="positions per batch (bounds memory)")
    p.add_argument("--device", help="torch device: auto, cpu, cuda")


def run(args) -> int:
    from ..recon.approximant import ApproximantSettings, approximant
    keys = ("iterations", "n_slabs", "output_slices", "optimizer", "batch_size", "device")
    settings = build_settings(ApproximantSettings, "approximant", args.config,
                              {k: getattr(args, k) for k in keys})
    timer = Timer()
    with timer("read"):
        scan = read_scan(args.scan)
    try:
        with timer("approximant"):
            vol = approximant(scan, settings)
    except ValueError as e:
        raise UserError(f"{args.scan}: {e}") from None
    vol.attrs.update(provenance(settings.to_dict(), [args.scan]))
    with timer("write"):
        write_volume(args.out, vol)
    hist = vol.attrs["loss_history"]
    write_run_info(args.out.with_suffix(".json"), "approximant", settings.to_dict(), timer.seconds,
                   {"loss_history": hist, "shape": list(vol.shape), "voxel_size_m": list(vol.voxel_size_m)})
    print(f"wrote {args.out} {vol.shape}: loss {hist[0]:.4g} → {hist[-1]:.4g} in {settings.iterations} "
          f"iterations, {timer.seconds['approximant']:.1f} s")
    return 0

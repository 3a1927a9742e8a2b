"""``rapidtomo golden``: the golden standard (per-angle ptychography + SART) from the nominal scan."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings
from ..errors import UserError
from ..io import read_scan, write_volume
from ..runinfo import Timer, provenance, write_run_info

HELP = "two-step golden standard: per-angle ptychography, phase projections, SART (10 sweeps)"
SECTION = "golden"
DEFAULT_METHOD = "sart"


def add_arguments(p: argparse.ArgumentParser, section: str = SECTION, default_method: str = DEFAULT_METHOD) -> None:
    p.add_argument("scan", type=Path, help="scan file (.h5)")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="output volume (.h5); OUT.json holds settings and timings, OUT.cache.h5 the per-angle cache")
    p.add_argument("--config", type=Path, help=f"TOML/YAML settings file (section [{section}])")
    p.add_argument("--method", choices=["fbp", "sart"], help=f"tomography (default {default_method})")
    p.add_argument("--sweeps", type=int, help="SART passes over all angles (default 10)")
    p.add_argument("--epochs", type=int, help="ptychography passes over the positions per angle")
    p.add_argument("--n-slices", type=int, help="multislice slices in per-angle ptychography (default 1)")
    p.add_argument("--align", action="store_true", default=None, help="cross-correlation alignment of projections")
    p.add_argument("--device", help="torch device: auto, cpu, cuda")
    p.add_argument("--workers", type=int, help="CPU processes solving angles in parallel (default: one per core)")


def run(args, section: str = SECTION, default_method: str = DEFAULT_METHOD) -> int:
    from ..recon.two_step import TwoStepSettings, two_step
    keys = ("method", "sweeps", "epochs", "n_slices", "align", "device", "workers")
    overrides = {"method": default_method, **{k: getattr(args, k) for k in keys if getattr(args, k) is not None}}
    settings = build_settings(TwoStepSettings, section, args.config, overrides)
    timer = Timer()
    with timer("read"):
        scan = read_scan(args.scan)
    try:
        with timer("two_step"):
            vol = two_step(scan, settings, cache_path=args.out.with_suffix(".cache.h5"))
    except ValueError as e:
        raise UserError(f"{args.scan}: {e}") from None
    vol.attrs.update(provenance(settings.to_dict(), [args.scan]))
    with timer("write"):
        write_volume(args.out, vol)
    timer.seconds.update(ptychography=vol.attrs["seconds_ptychography"], tomography=vol.attrs["seconds_tomography"])
    write_run_info(args.out.with_suffix(".json"), section, settings.to_dict(), timer.seconds)
    print(f"wrote {args.out} {vol.shape} ({settings.method.upper()}, {scan.n_angles} angles) in "
          f"{timer.seconds['two_step']:.1f} s")
    return 0

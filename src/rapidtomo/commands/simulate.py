"""``rapidtomo simulate``: a phantom and its nominal and reduced-angle scans."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import build_settings
from ..errors import UserError
from ..io import read_volume, write_scan, write_volume
from ..runinfo import Timer, provenance, write_run_info

HELP = "simulate a phantom (synthetic IC or your volume) and its nominal and reduced-angle scans"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [simulate])")
    p.add_argument("--out", type=Path, default=Path("runs/simulate"),
                   help="output folder: phantom.h5, scan_nominal.h5, scan_reduced.h5, simulate.json")
    p.add_argument("--preset", choices=["small", "paper"], default="small",
                   help="small: minutes on 2 CPU cores; paper: the paper's geometry, for a GPU")
    p.add_argument("--phantom", type=Path, help="simulate this volume file (phase per voxel) instead of a synthetic IC")
    p.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="synthetic phantom size in voxels")
    p.add_argument("--n-nominal", type=int, help="angles of the nominal acquisition")
    p.add_argument("--n-reduced", type=int, help="angles of the reduced acquisition")
    p.add_argument("--theta-max", type=float, dest="theta_max_deg", help="angular range θmax in degrees")
    p.add_argument("--theta-max-nominal", type=float, dest="theta_max_nominal_deg",
                   help="angular range of the nominal scan in degrees (default: --theta-max)")
    p.add_argument("--photons", type=float, help="mean photons per pattern (0: noiseless)")
    p.add_argument("--seed", type=int, help="seed of the phantom layout and the noise")
    p.add_argument("--device", help="torch device: auto, cpu, cuda")


def settings_from_args(args):
    from ..simulate import PAPER_PRESET, SimulateSettings
    overrides = dict(PAPER_PRESET) if args.preset == "paper" else {}
    overrides.update({k: getattr(args, k) for k in ("n_nominal", "n_reduced", "theta_max_deg", "theta_max_nominal_deg", "photons", "seed",
                                                    "device") if getattr(args, k) is not None})
    if args.shape:
        overrides["shape"] = tuple(args.shape)
    return build_settings(SimulateSettings, "simulate", args.config, overrides)


def run(args) -> int:
    from ..simulate import simulate
    settings = settings_from_args(args)
    phantom = read_volume(args.phantom) if args.phantom else None
    timer = Timer()
    try:
        with timer("simulate"):
            phantom, nominal, reduced = simulate(settings, phantom)
    except ValueError as e:
        raise UserError(f"{args.phantom or 'settings'}: {e}") from None
    out = args.out
    with timer("write"):
        phantom.attrs.update(provenance(settings.to_dict(), [args.phantom] if args.phantom else []))
        for scan in (nominal, reduced):
            scan.attrs.update(provenance(settings.to_dict()))
        write_volume(out / "phantom.h5", phantom)
        write_scan(out / "scan_nominal.h5", nominal)
        write_scan(out / "scan_reduced.h5", reduced)
    write_run_info(out / "simulate.json", "simulate", settings.to_dict(), timer.seconds,
                   {"n_patterns": {"nominal": int(nominal.intensities.shape[0] * nominal.intensities.shape[1]),
                                   "reduced": int(reduced.intensities.shape[0] * reduced.intensities.shape[1])}})
    print(f"wrote {out}/phantom.h5 {phantom.shape}, scan_nominal.h5 {nominal.intensities.shape}, "
          f"scan_reduced.h5 {reduced.intensities.shape} in {timer.seconds['simulate']:.1f} s")
    print(json.dumps({k: round(v, 2) for k, v in timer.seconds.items()}))
    return 0

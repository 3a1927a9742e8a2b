"""``rapidtomo sweep angles|range RUN_DIR``: quality against the number of angles or θmax (Fig. 2)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

HELP = "quality vs number of angles or angular range, on a finished run's sample (the paper's Fig. 2)"
DEFAULTS = {"angles": "3,5,9,15,21,31", "range": "8,16,32,64,100,140.8"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=["angles", "range"], help="what to vary (range: at N = the run's n_reduced)")
    p.add_argument("run_dir", type=Path, help="a run directory from `rapidtomo pipeline` or `demo`")
    p.add_argument("--values", help=f"comma-separated values (angles: {DEFAULTS['angles']}; "
                   f"range in degrees: {DEFAULTS['range']})")
    p.add_argument("--baselines", action="store_true", help="also FBP and SART for each value (slower)")
    p.add_argument("--retrain", action="store_true", help="train a network per value (much slower) instead of "
                   "applying the run's model")


def run(args) -> int:
    from ..experiments.sweeps import sweep, write_sweep
    text = args.values or DEFAULTS[args.kind]
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--values {text!r}: expected comma-separated numbers") from None
    records = sweep(args.run_dir, args.kind, values, baselines=args.baselines, retrain=args.retrain)
    paths = write_sweep(args.run_dir, args.kind, records)
    print(f"{'value':>8} {'method':<12}{'PCC':>7}{'MS-SSIM':>9}{'BER':>7}{'DICE':>7}")
    for r in records:
        print(f"{r['value']:>8g} {r['method']:<12}{r['pcc']:>7.3f}{r['ms_ssim']:>9.3f}{r['ber']:>7.3f}{r['dice']:>7.3f}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0

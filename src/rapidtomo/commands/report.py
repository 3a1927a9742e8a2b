"""``rapidtomo report RUN_DIR``: an HTML report (metrics, views, PSDs, curves, timings, settings)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

HELP = "write RUN_DIR/report/index.html: metrics, layer views, PSD planes, curves, timings and settings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory (pipeline/demo output, or your own files)")
    p.add_argument("-o", "--out", type=Path, help="report folder (default: RUN_DIR/report)")


def run(args) -> int:
    from ..report import build_report
    if not args.run_dir.is_dir():
        raise UserError(f"{args.run_dir}: run directory not found")
    print(f"wrote {build_report(args.run_dir, args.out)}")
    return 0

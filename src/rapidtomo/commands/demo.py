"""``rapidtomo demo``: the whole pipeline on the built-in synthetic IC (presets/demo.toml)."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import pipeline

HELP = "run the whole method on a built-in synthetic IC and print metrics, timings and the report path"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    pipeline.add_pipeline_arguments(p)
    p.add_argument("--config", type=Path, help="settings to use instead of the built-in demo preset")
    p.add_argument("--force", action="store_true", help="rerun every stage even if unchanged")


def run(args) -> int:
    from ..config import preset_path
    from ..pipeline import run_pipeline
    config = args.config or preset_path("demo")
    rows = run_pipeline(args.out, config, seed=getattr(args, "seed", None), force=args.force)
    pipeline.finish(args.out, rows)
    return 0

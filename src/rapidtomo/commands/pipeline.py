"""``rapidtomo pipeline``: every stage in one run directory, resuming where it stopped."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import rundir
from .flags import add_cluster_arguments, add_dry_run_argument, add_settings_arguments, cluster_overrides

HELP = "run every stage (simulate or your scans → golden → baselines → approximant → train → predict → " \
       "evaluate → report) in RUN_DIR, skipping unchanged stages"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="run directory (created; holds every input, output and log)")
    add_config_arguments(p, "TOML/YAML with [pipeline], [simulate], [golden], [baseline], [approximant], "
                         "[train], [predict], [cluster] sections; see rapidtomo/presets/demo.toml")
    add_pipeline_arguments(p)
    p.add_argument("--force", action="store_true", help="rerun every stage even if unchanged")
    add_dry_run_argument(p)


def add_config_arguments(p: argparse.ArgumentParser, config_help: str, default_preset: str | None = None) -> None:
    """``--config FILE`` or ``--preset NAME`` (a built-in settings file), one of them."""
    from ..config import preset_names
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", type=Path, help=config_help)
    g.add_argument("--preset", choices=preset_names(), default=default_preset,
                   help="built-in settings file rapidtomo/presets/PRESET.toml (demo: thin and fast; thick: the "
                   "paper's path/depth-of-field regime, CPU-sized; paper: the paper's geometry, for a GPU)")


def config_path(args) -> Path | None:
    """The settings file that ``--config`` or ``--preset`` names (None: neither)."""
    from ..config import preset_path
    return args.config or (preset_path(args.preset) if args.preset else None)


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """``--seed`` (from ``PipelineSettings``; overrides the config's ``[pipeline] seed``) and the
    cluster flags (over the config's ``[cluster]``)."""
    from ..pipeline import PipelineSettings
    add_settings_arguments(p, PipelineSettings, ["seed"])
    add_cluster_arguments(p)


def finish(run_dir: Path, rows) -> None:
    """Print the metrics table, the stage table and the report's path."""
    from ..metrics.evaluate import metrics_table
    from ..pipeline import stage_table
    metrics = run_dir / rundir.METRICS
    if metrics.exists():
        m = json.loads(metrics.read_text())
        print("\nmetrics on the held-out part (x fraction {}):".format(m.get("region_x_fraction")))
        print(metrics_table(m))
    table = stage_table(rows)
    (run_dir / rundir.STAGES).write_text(table + "\n")
    print("\n" + table)
    report = run_dir / rundir.REPORT
    if report.exists():
        print(f"\nreport: {report.resolve()}")


def run(args) -> int:
    from ..pipeline import run_pipeline
    rows = run_pipeline(args.run_dir, config_path(args), seed=getattr(args, "seed", None), force=args.force,
                        dry_run=args.dry_run, overrides=cluster_overrides(args))
    if args.dry_run:
        return 0
    finish(args.run_dir, rows)
    return 0

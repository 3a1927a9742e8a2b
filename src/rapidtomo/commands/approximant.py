"""``rapidtomo approximant``: the network's input volume from a (reduced-angle) scan."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings
from .flags import add_dry_run_argument, add_settings_arguments, settings_overrides

HELP = "reconstruct the approximant (a few multislice gradient steps, 2x coarser in x and y); under " \
       "torchrun the angles are split over the processes"


def _settings_class():
    from ..recon.approximant import ApproximantSettings
    return ApproximantSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scan", type=Path, help="scan file (.h5), e.g. scan_reduced.h5")
    p.add_argument("-o", "--out", type=Path, required=True, help="output volume file (.h5 or .zarr); settings "
                   "and timings go to OUT with suffix .json")
    p.add_argument("--probe", type=Path, metavar="FILE", help="probe to use: the golden standard's retrieved "
                   "probe (rapidtomo golden --probe-out, golden_probe.h5 in a run directory; as in the paper) or "
                   "a scan file's /entry/probe (default: the scan's own /entry/probe, for simulated scans a "
                   "deliberately wrong guess)")
    p.add_argument("--shifts", type=Path, metavar="FILE", help="the sample's shifts per angle as the two-step "
                   "baseline of the same scan found them (rapidtomo baseline --align: its volume file or OUT.json); "
                   "the probe positions relative to the sample follow them (default: none, the sample did not move)")
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [approximant])")
    add_settings_arguments(p, _settings_class(), _settings_class().model_fields)
    add_dry_run_argument(p)


def run(args) -> int:
    from ..distributed import env_rank
    from ..stages import run_approximant
    cls = _settings_class()
    settings = build_settings(cls, "approximant", args.config, settings_overrides(args, cls.model_fields))
    r = run_approximant(args.scan, args.out, settings, probe_path=args.probe, dry_run=args.dry_run,
                        shifts_path=args.shifts)
    if args.dry_run or env_rank() != 0:
        return 0
    hist = r["loss_history"]
    print(f"wrote {args.out} {r['shape']}: loss {hist[0]:.4g} → {hist[-1]:.4g} in {settings.iterations} "
          f"iterations, {r['timings']['approximant']:.1f} s, probe {r['probe_source']}")
    return 0

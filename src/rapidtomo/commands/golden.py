"""``rapidtomo golden``: the golden standard (per-angle ptychography + SART) from the nominal scan."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings
from .flags import add_cluster_arguments, add_dry_run_argument, add_settings_arguments, cluster_settings, \
    settings_overrides

HELP = "two-step golden standard: per-angle ptychography, phase projections, SART (10 sweeps)"
SECTION = "golden"
DEFAULTS = {"method": "sart"}


def _settings_class():
    from ..recon.two_step import TwoStepSettings
    return TwoStepSettings


def add_arguments(p: argparse.ArgumentParser, section: str = SECTION, defaults: dict = DEFAULTS) -> None:
    p.add_argument("scan", type=Path, help="scan file (.h5)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output volume (.h5 or .zarr); OUT.json holds "
                   "settings and timings, OUT.cache.h5 the per-angle cache")
    p.add_argument("--config", type=Path, help=f"TOML/YAML settings file (section [{section}])")
    if section == SECTION:
        p.add_argument("--probe-out", type=Path, metavar="FILE", help="where to write the retrieved probe (HDF5 "
                       "/probe) for rapidtomo approximant --probe (default: OUT's name + _probe.h5, e.g. "
                       "golden_probe.h5)")
    add_settings_arguments(p, _settings_class(), _settings_class().model_fields, defaults=defaults)
    add_cluster_arguments(p)
    add_dry_run_argument(p)


def run(args, section: str = SECTION, defaults: dict = DEFAULTS) -> int:
    from ..cluster import Cluster
    from ..stages import run_two_step
    cls = _settings_class()
    settings = build_settings(cls, section, args.config, settings_overrides(args, cls.model_fields), defaults)
    probe_out = None
    if section == SECTION:
        probe_out = args.probe_out or args.out.with_name(args.out.stem + "_probe.h5")
    with Cluster(cluster_settings(args, args.config)) as cluster:
        r = run_two_step(args.scan, args.out, settings, stage=section, probe_path=probe_out, dry_run=args.dry_run,
                         cluster=cluster)
    if args.dry_run:
        return 0
    print(f"wrote {args.out} {r['shape']} ({settings.method.upper()}, {r['n_angles']} angles) in "
          f"{r['timings']['two_step']:.1f} s" + (f"; probe used: {probe_out}" if probe_out else ""))
    if r["alignment"]:
        print(r["alignment"])
    return 0

"""``rapidtomo simulate``: a phantom and its nominal and reduced-angle scans."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import build_settings, preset, preset_names
from .flags import add_cluster_arguments, add_dry_run_argument, add_settings_arguments, cluster_settings, \
    settings_overrides

HELP = "simulate a phantom (synthetic IC or your volume) and its nominal and reduced-angle scans"
NAMES = {"theta_max_deg": "--theta-max", "theta_max_nominal_deg": "--theta-max-nominal"}


def _settings_class():
    from ..simulate import SimulateSettings
    return SimulateSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [simulate])")
    p.add_argument("--out", type=Path, default=Path("runs/simulate"),
                   help="output folder: phantom.h5, scan_nominal.h5, scan_reduced.h5, simulate.json")
    p.add_argument("--preset", choices=["small"] + preset_names(), default="small",
                   help="small: the defaults below, minutes on 2 CPU cores; else the [simulate] section of "
                   "rapidtomo/presets/PRESET.toml (paper: the paper's geometry, for a GPU)")
    p.add_argument("--phantom", type=Path, help="simulate this volume file (phase per voxel) instead of a synthetic IC")
    add_settings_arguments(p, _settings_class(), _settings_class().model_fields, names=NAMES,
                           metavars={"shape": ("Z", "Y", "X")})
    add_cluster_arguments(p)
    add_dry_run_argument(p)


def settings_from_args(args):
    cls = _settings_class()
    defaults = preset(args.preset).get("simulate") if args.preset != "small" else None
    return build_settings(cls, "simulate", args.config, settings_overrides(args, cls.model_fields), defaults)


def run(args) -> int:
    from ..cluster import Cluster
    from ..stages import run_simulate
    settings = settings_from_args(args)
    with Cluster(cluster_settings(args, args.config)) as cluster:
        r = run_simulate(settings, args.out, args.phantom, dry_run=args.dry_run, cluster=cluster)
    if args.dry_run:
        return 0
    print(f"wrote {args.out}/phantom.h5 {r['phantom_shape']}, scan_nominal.h5 {r['nominal_shape']}, "
          f"scan_reduced.h5 {r['reduced_shape']} in {r['timings']['simulate']:.1f} s")
    print(json.dumps({k: round(v, 2) for k, v in r["timings"].items()}))
    return 0

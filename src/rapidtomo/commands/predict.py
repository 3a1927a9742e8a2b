"""``rapidtomo predict``: apply a trained model to its inputs, an approximant and/or the reduced-angle
SART/FBP (tiled, blended, 2x in y and x of the approximant)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings
from .flags import add_cluster_arguments, add_dry_run_argument, add_settings_arguments, cluster_settings, \
    settings_overrides

HELP = "predict the golden-standard-quality volume from an approximant (and/or the reduced-angle SART/FBP) " \
       "with a trained model"


def _settings_class():
    from ..infer import PredictSettings
    return PredictSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="model file from `rapidtomo train`")
    p.add_argument("approximant", type=Path, nargs="?", help="approximant volume (.h5 or .zarr), (Z, Y, X); "
                   "omit it for a model that does not take it (inputs sart or fbp alone)")
    for name in ("sart", "fbp"):
        p.add_argument(f"--{name}", type=Path, help=f"reduced-angle {name.upper()} volume (.h5 or .zarr), (Z'', 2Y, "
                       f"2X), for a model trained with it as an input")
    p.add_argument("-o", "--out", type=Path, required=True, help="output volume (.h5 or .zarr), (Z', 2Y, 2X); "
                   "settings and timings go to OUT with suffix .json")
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [predict])")
    add_settings_arguments(p, _settings_class(), _settings_class().model_fields)
    add_cluster_arguments(p)
    add_dry_run_argument(p)


def run(args) -> int:
    from ..cluster import Cluster
    from ..stages import run_predict
    cls = _settings_class()
    settings = build_settings(cls, "predict", args.config, settings_overrides(args, cls.model_fields))
    baselines = {n: getattr(args, n) for n in ("sart", "fbp") if getattr(args, n) is not None}
    with Cluster(cluster_settings(args, args.config)) as cluster:
        r = run_predict(args.model, args.approximant, args.out, settings, dry_run=args.dry_run, baselines=baselines,
                        cluster=cluster)
    if args.dry_run:
        return 0
    print(f"wrote {args.out} {tuple(r['output_shape'])} in {r['timings']['predict']:.1f} s "
          f"({r['output_voxels_per_s']:.3g} output voxels/s)")
    return 0

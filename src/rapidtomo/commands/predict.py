"""``rapidtomo predict``: apply a trained model to an approximant (tiled, blended, 2x in y and x)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings
from ..runinfo import Timer, write_run_info

HELP = "predict the golden-standard-quality volume from an approximant with a trained model"

FLAGS = ("window", "overlap", "batch_size", "device", "normalise", "z_slices")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="model file from `rapidtomo train`")
    p.add_argument("approximant", type=Path, help="approximant volume (.h5 or .zarr), (Z, Y, X)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output volume (.h5 or .zarr), (Z', 2Y, 2X); "
                   "settings and timings go to OUT with suffix .json")
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [predict])")
    p.add_argument("--window", type=int, help="window in y and x on the approximant grid (default: model's patch)")
    p.add_argument("--overlap", type=float, help="overlap fraction of windows (0.5)")
    p.add_argument("--batch-size", type=int, help="windows per network call (8)")
    p.add_argument("--normalise", choices=["volume", "model"], help="input statistics: the volume's own "
                   "(default) or the training approximant's")
    p.add_argument("--z-slices", type=int, help="output slices (default: the training target's)")
    p.add_argument("--device", help="torch device: auto, cpu, cuda")


def run(args) -> int:
    from ..infer import PredictSettings, predict_file
    settings = build_settings(PredictSettings, "predict", args.config, {k: getattr(args, k) for k in FLAGS})
    timer = Timer()
    with timer("predict"):
        summary = predict_file(args.model, args.approximant, args.out, settings)
    write_run_info(args.out.with_suffix(".json"), "predict", settings.to_dict(), timer.seconds,
                   {**summary, "sources": [str(args.model), str(args.approximant)]})
    print(f"wrote {args.out} {tuple(summary['output_shape'])} in {timer.seconds['predict']:.1f} s "
          f"({summary['output_voxels_per_s']:.3g} output voxels/s)")
    return 0

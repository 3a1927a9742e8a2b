"""``rapidtomo train``: train the RAPID network on an approximant and its golden standard."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import build_settings
from .flags import add_dry_run_argument, add_settings_arguments, settings_overrides

HELP = "train the network: approximant → golden standard (2x finer in y, x); writes a model file"


def _settings_class():
    from ..train import TrainSettings
    return TrainSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--approximant", type=Path, required=True, help="approximant volume (.h5 or .zarr), (Z, Y, X)")
    p.add_argument("--target", type=Path, required=True, help="golden standard volume (.h5 or .zarr) on the grid "
                   "2x finer in y and x, (Z', 2Y, 2X); from `rapidtomo golden` or made elsewhere")
    for name in ("sart", "fbp"):
        p.add_argument(f"--{name}", type=Path, help=f"reduced-angle {name.upper()} volume (.h5 or .zarr) on the "
                       f"target's grid, (Z'', 2Y, 2X); needed when --inputs names {name}")
    p.add_argument("-o", "--out", type=Path, required=True, help="model file (.pt); beside it: MODEL.ckpt.pt "
                   "(checkpoint), MODEL.log.csv, MODEL.loss.png, MODEL.json (settings, timings)")
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [train])")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint beside MODEL")
    add_settings_arguments(p, _settings_class(), _settings_class().model_fields)
    add_dry_run_argument(p)


def run(args) -> int:
    from ..stages import run_train
    cls = _settings_class()
    settings = build_settings(cls, "train", args.config, settings_overrides(args, cls.model_fields))
    baselines = {n: getattr(args, n) for n in ("sart", "fbp") if getattr(args, n) is not None}
    result = run_train(args.approximant, args.target, args.out, settings, resume=args.resume, dry_run=args.dry_run,
                       baselines=baselines)
    if args.dry_run or int(os.environ.get("RANK", "0")) != 0:
        return 0
    last = result["history"][-1] if result["history"] else {}
    print(f"wrote {args.out}: {len(result['history'])} epochs, {result['steps']} steps, train NPCC "
          f"{last.get('train_loss', float('nan')):.4f}, val NPCC {last.get('val_loss', float('nan')):.4f}, "
          f"{result['samples_per_s']:.2f} samples/s")
    return 0

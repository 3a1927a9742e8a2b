"""``rapidtomo train``: train the RAPID network on an approximant and its golden standard."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import build_settings
from ..io import read_volume
from ..runinfo import Timer, write_run_info

HELP = "train the network: approximant → golden standard (2x finer in y, x); writes a model file"

FLAGS = ("preset", "variant", "norm", "patch", "train_fraction", "epochs", "batch_size", "lr_start", "lr_end",
         "decay_steps", "seed", "device")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--approximant", type=Path, required=True, help="approximant volume (.h5/.zarr), (Z, Y, X)")
    p.add_argument("--target", type=Path, required=True, help="golden standard volume on the grid 2x finer in "
                   "y and x, (Z', 2Y, 2X); from `rapidtomo golden` or made elsewhere")
    p.add_argument("-o", "--out", type=Path, required=True, help="model file (.pt); beside it: MODEL.ckpt.pt "
                   "(checkpoint), MODEL.log.csv, MODEL.loss.png, MODEL.json (settings, timings)")
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [train])")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint beside MODEL")
    p.add_argument("--preset", choices=["small", "paper"], help="small (CPU-sized, default) or paper")
    p.add_argument("--variant", choices=list("ABCDEFG"), help="ablation architecture (E = RAPID, default)")
    p.add_argument("--norm", choices=["batch", "instance", "group", "none"], help="normalisation layers")
    p.add_argument("--patch", type=int, help="approximant patch in y and x (default: the preset's)")
    p.add_argument("--train-fraction", type=float, help="x < fraction·X trains, the rest is held out (0.6)")
    p.add_argument("--epochs", type=int, help="epochs (default 30; paper 200)")
    p.add_argument("--batch-size", type=int, help="patches per step and process (default 2)")
    p.add_argument("--lr-start", type=float, help="initial learning rate (2e-4)")
    p.add_argument("--lr-end", type=float, help="final learning rate (5e-5)")
    p.add_argument("--decay-steps", type=int, help="decay steps T of the schedule (default: all steps)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--device", help="torch device: auto, cpu, cuda")


def run(args) -> int:
    import os
    from ..train import TrainSettings, train
    settings = build_settings(TrainSettings, "train", args.config, {k: getattr(args, k) for k in FLAGS})
    timer = Timer()
    with timer("read"):
        approx, target = read_volume(args.approximant), read_volume(args.target)
    with timer("train_total"):
        result = train(approx, target, settings, args.out, resume=args.resume,
                       names=(str(args.approximant), str(args.target)))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    timings = {**timer.seconds, **result["timings"]}
    write_run_info(args.out.with_suffix(".json"), "train", settings.to_dict(), timings,
                   {"network": settings.network_settings().to_dict(), "history": result["history"],
                    "samples_per_s": result["samples_per_s"], "n_train": result["n_train"],
                    "n_val": result["n_val"], "steps": result["steps"], "world_size": result["world_size"],
                    "normalisation": result["normalisation"], "notes": result["notes"],
                    "sources": [str(args.approximant), str(args.target)]})
    last = result["history"][-1] if result["history"] else {}
    print(f"wrote {args.out}: {len(result['history'])} epochs, {result['steps']} steps, train NPCC "
          f"{last.get('train_loss', float('nan')):.4f}, val NPCC {last.get('val_loss', float('nan')):.4f}, "
          f"{result['samples_per_s']:.2f} samples/s")
    return 0

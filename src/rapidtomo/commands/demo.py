"""``rapidtomo demo``: the whole pipeline on a built-in sample (presets/demo.toml, or ``--preset``): the synthetic IC,
or a sky130 standard-cell block rendered from its layout (``--sample layout``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import pipeline
from .flags import cluster_overrides

HELP = "run the whole method on a built-in sample (synthetic IC or standard-cell block) and print metrics, " \
       "timings and the report path"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    p.add_argument("--sample", choices=["ic", "layout"], default="ic",
                   help="ic: the synthetic IC; layout: a sky130 standard-cell block rendered from its layout with "
                        "the [simulate] shape, voxel and energy (needs gdstk: the layouts extra), written to "
                        "RUN_DIR/layout_block.h5 and simulated as [pipeline] phantom; where the settings name "
                        "builtin:demo (the IC's pre-trained model) it fine-tunes builtin:layout, the block's")
    pipeline.add_pipeline_arguments(p)
    pipeline.add_config_arguments(p, "settings to use instead of the built-in preset", default_preset="demo")
    p.add_argument("--force", action="store_true", help="rerun every stage even if unchanged")


def overrides(args) -> dict[str, dict[str, Any]]:
    """The pipeline settings that ``--sample`` implies: for ``layout``, the block (made here in
    ``args.out`` unless already there from the same settings) as ``[pipeline] phantom``."""
    if args.sample == "ic":
        return {}
    from .. import rundir
    from ..pipeline import load_pipeline_config, stage_settings
    from ..stages import run_layout_block
    config_path = pipeline.config_path(args)
    config, pipe = load_pipeline_config(config_path)
    if getattr(args, "seed", None) is not None:
        pipe = pipe.model_copy(update={"seed": args.seed})
    simulate = stage_settings(config, pipe, config_path)["simulate"]
    out = Path(args.out) / rundir.LAYOUT_SAMPLE
    Path(args.out).mkdir(parents=True, exist_ok=True)
    r = run_layout_block(simulate, out, pipe.seed, force=args.force)
    if r["written"]:
        dz, dy, dx = r["voxel_size_m"]
        print(f"wrote {out}: sky130 standard-cell block {r['shape']}, voxels {dz * 1e9:.4g} x {dy * 1e9:.4g} x "
              f"{dx * 1e9:.4g} nm")
    result = {"pipeline": {"phantom": str(out)}}
    if config.get("pretrain", {}).get("model") == "builtin:demo":
        # the block's stack is thicker than the IC: another geometry, with its own shipped model
        print("pre-training: the shipped model builtin:layout (made for the block's geometry; builtin:demo is "
              "the synthetic IC's; docs/pretraining.md)")
        result["pretrain"] = {"model": "builtin:layout"}
    return result


def run(args) -> int:
    from ..pipeline import run_pipeline
    rows = run_pipeline(args.out, pipeline.config_path(args), seed=getattr(args, "seed", None), force=args.force,
                        overrides={**overrides(args), **cluster_overrides(args)})
    pipeline.finish(args.out, rows)
    return 0

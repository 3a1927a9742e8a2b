"""``rapidtomo phantom``: a 3D sample from a GDSII/OASIS layout, or a random standard-cell block, and a process stack."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import build_settings
from ..errors import UserError
from ..runinfo import Timer, provenance, write_run_info

HELP = "render a layout (GDSII/OASIS) or a random standard-cell block with a process stack to a 3D sample"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML/YAML settings file (section [phantom])")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--layout", type=Path, help="GDSII (.gds) or OASIS (.oas) layout file")
    src.add_argument("--cells", help="cell library for a random block: a directory of GDS files or sky130_fd_sc_hd")
    p.add_argument("--stack", help="process stack: sky130, generic-cu, or a TOML file (default sky130)")
    p.add_argument("--cell", help="layout cell to render (default: the only top-level cell)")
    p.add_argument("--window", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), dest="window_um",
                   help="window in µm, layout coordinates (default: the layout's bounding box)")
    p.add_argument("--voxel-size", type=float, nargs="+", metavar="M", dest="voxel_size_m",
                   help="voxel size in metres: one value or dz dy dx (default 20e-9)")
    p.add_argument("--energy-kev", type=float, help="photon energy in keV (default 8.8)")
    p.add_argument("--substrate-um", type=float, help="silicon below the substrate top in µm (default: the stack's)")
    p.add_argument("--rows", type=int, help="cell block: rows of cells")
    p.add_argument("--row-width-um", type=float, help="cell block: row width in µm")
    p.add_argument("--density", type=float, help="cell block: share of a row in logic cells")
    p.add_argument("--routing-density", type=float, help="cell block: share of routing tracks with wire")
    p.add_argument("--via-probability", type=float, help="cell block: chance of a via at a wire end")
    p.add_argument("--seed", type=int, help="cell block: seed of placement and routing")
    p.add_argument("--write-gds", type=Path, help="cell block: also write its layout to this GDS file")
    p.add_argument("-o", "--out", type=Path, default=Path("sample.h5"),
                   help="output sample (HDF5: /volume phase, /attenuation, /labels); settings and timings "
                        "go to the same name with .json")


def _layout():
    """``rapidtomo.phantom.layout``, or a one-line error when gdstk (the ``layouts`` extra) is missing."""
    try:
        from ..phantom import layout
    except ModuleNotFoundError as e:
        if e.name == "gdstk":
            raise UserError("reading layouts needs gdstk: pip install 'rapidtomo[layouts]'") from None
        raise
    return layout


def settings_from_args(args):
    keys = ("layout", "cells", "stack", "cell", "window_um", "energy_kev", "substrate_um", "rows", "row_width_um",
            "density", "routing_density", "via_probability", "seed")
    overrides = {k: getattr(args, k) for k in keys}
    if args.voxel_size_m:
        if len(args.voxel_size_m) not in (1, 3):
            raise UserError(f"--voxel-size takes one value or three (dz dy dx), got {len(args.voxel_size_m)}")
        overrides["voxel_size_m"] = args.voxel_size_m[0] if len(args.voxel_size_m) == 1 else tuple(args.voxel_size_m)
    return build_settings(_layout().PhantomSettings, "phantom", args.config, overrides)


def run(args) -> int:
    layout = _layout()
    settings = settings_from_args(args)
    timer = Timer()
    with timer("render"):
        sample = layout.make_sample(settings, write_gds=args.write_gds)
    vol = sample.volume
    with timer("write"):
        vol.attrs.update(provenance(settings.to_dict(), [s for s in (settings.layout, settings.stack) if s]))
        layout.write_sample(args.out, sample)
    counts = {name: int((sample.labels == i).sum()) for i, name in enumerate(sample.label_names)}
    write_run_info(args.out.with_suffix(".json"), "phantom", settings.to_dict(), timer.seconds,
                   {"shape": list(vol.shape), "voxel_size_m": list(vol.voxel_size_m),
                    "voxels_per_material": {k: v for k, v in counts.items() if v}})
    print(f"wrote {args.out} {vol.shape} voxels of {' x '.join(f'{v * 1e9:g}' for v in vol.voxel_size_m)} nm "
          f"in {timer.seconds['render']:.1f} s")
    print(json.dumps({k: round(v, 2) for k, v in timer.seconds.items()}))
    return 0

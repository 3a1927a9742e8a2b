"""``rapidtomo evaluate``: PCC, MS-SSIM, BER and DICE of volumes against one or more references."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError
from ..io import read_volume
from ..io.atomic import atomic_path

HELP = "compare volumes with a reference (PCC, MS-SSIM, BER, DICE); writes metrics.json and prints a table"

# file stems of a run directory → the names used in metrics.json and the report
RUN_NAMES = {"prediction": "rapid", "phantom": "truth"}


def named_path(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` → (NAME, PATH); a bare PATH is named by its stem (prediction → rapid, phantom → truth)."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    p = Path(text)
    return RUN_NAMES.get(p.stem, p.stem), p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("volumes", nargs="+", metavar="[NAME=]VOLUME",
                   help="volume files to evaluate (any grid of the same physical extent as the reference)")
    p.add_argument("--reference", action="append", required=True, metavar="[NAME=]VOLUME",
                   help="reference volume (golden standard, or truth); repeat for several → vs_NAME blocks")
    p.add_argument("--region", help="part of the reference grid to score: AXIS=START:STOP[,...], fractions "
                   "(x=0.6:1.0, the held-out part) or voxel indices (x=150:256)")
    p.add_argument("-o", "--out", type=Path, help="metrics file (JSON); default: metrics.json beside the first reference")


def run(args) -> int:
    from ..metrics.evaluate import Region, evaluate, metrics_table
    region = None
    if args.region:
        try:
            region = Region.parse(args.region)
        except ValueError as e:
            raise UserError(f"--region: {e}") from None
    refs = [named_path(r) for r in args.reference]
    vols = dict(named_path(v) for v in args.volumes)
    if len(vols) != len(args.volumes) or len({n for n, _ in refs}) != len(refs):
        raise UserError("two volumes or two references have the same name; name them NAME=PATH")
    volumes = {name: read_volume(path) for name, path in vols.items()}
    result = {}
    for ref_name, ref_path in refs:
        ref = read_volume(ref_path)
        for name, v in volumes.items():
            if any(abs(a - b) > 0.02 * b for a, b in zip(v.extent_m, ref.extent_m)):
                raise UserError(f"{vols[name]}: /volume extent {tuple(f'{e:.4g}' for e in v.extent_m)} m differs "
                                f"from the reference {ref_path}'s {tuple(f'{e:.4g}' for e in ref.extent_m)} m")
        if region is not None:
            try:
                region.slices(ref.shape)
            except ValueError as e:
                raise UserError(f"--region on {ref_path} (shape {ref.shape}): {e}") from None
        result[f"vs_{ref_name}"] = evaluate(ref, volumes, region)
    out = args.out or refs[0][1].parent / "metrics.json"
    info = {"region": region.text() if region else None,
            "region_x_fraction": _x_fraction(region),
            "references": {f"vs_{n}": str(p) for n, p in refs},
            "volumes": {n: str(p) for n, p in vols.items()}}
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({**result, **info}, indent=2))
    print(metrics_table(result))
    print(f"wrote {out}")
    return 0


def _x_fraction(region) -> list[float] | None:
    """The x range as fractions when the region is only that (the pipeline's key), else None."""
    if region is None or set(region.ranges) != {"x"} or not isinstance(region.ranges["x"][0], float):
        return None
    return list(region.ranges["x"])

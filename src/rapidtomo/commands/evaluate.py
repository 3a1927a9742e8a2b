"""``rapidtomo evaluate``: PCC, MS-SSIM, BER and DICE of volumes against one or more references."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..rundir import METRICS, STEM_NAMES

HELP = "compare volumes with a reference (PCC, MS-SSIM, BER, DICE); writes metrics.json and prints a table"


def named_path(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` → (NAME, PATH); a bare PATH is named by its stem (prediction → rapid, phantom → truth)."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    p = Path(text)
    return STEM_NAMES.get(p.stem, p.stem), p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("volumes", nargs="+", metavar="[NAME=]VOLUME",
                   help="volume files to evaluate (any grid of the same physical extent as the reference)")
    p.add_argument("--reference", action="append", required=True, metavar="[NAME=]VOLUME",
                   help="reference volume (golden standard, or truth); repeat for several → vs_NAME blocks")
    p.add_argument("--region", help="part of the reference grid to score: AXIS=START:STOP[,...], fractions "
                   "(x=0.6:1.0, the held-out part) or voxel indices (x=150:256); default: the whole grid")
    p.add_argument("-o", "--out", type=Path, help="metrics file (JSON); default: metrics.json beside the first reference")


def run(args) -> int:
    from ..metrics.evaluate import Region, metrics_table
    from ..stages import run_evaluate
    region = None
    if args.region:
        try:
            region = Region.parse(args.region)
        except ValueError as e:
            raise UserError(f"--region: {e}") from None
    refs = [named_path(r) for r in args.reference]
    vols = [named_path(v) for v in args.volumes]
    if len(dict(vols)) != len(vols) or len(dict(refs)) != len(refs):
        raise UserError("two volumes or two references have the same name; name them NAME=PATH")
    out = args.out or refs[0][1].parent / METRICS
    result = run_evaluate(dict(vols), dict(refs), out, region)
    print(metrics_table(result))
    print(f"wrote {out}")
    return 0

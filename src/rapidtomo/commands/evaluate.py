"""``rapidtomo evaluate``: PCC, MS-SSIM, BER and DICE of volumes against a reference."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError
from ..io import read_volume
from ..io.atomic import atomic_path

HELP = "compare volumes with a reference (PCC, MS-SSIM, BER, DICE); writes metrics.json and prints a table"


def parse_region(text: str | None) -> tuple[float, float] | None:
    """``x=0.6:1.0`` → (0.6, 1.0): the x range as fractions of the reference's width."""
    if not text:
        return None
    try:
        axis, rng = text.split("=")
        lo, hi = (float(v) for v in rng.split(":"))
    except ValueError:
        raise UserError(f"--region {text!r}: expected x=START:STOP with fractions, e.g. x=0.6:1.0") from None
    if axis.strip() != "x" or not 0 <= lo < hi <= 1:
        raise UserError(f"--region {text!r}: need x=START:STOP with 0 <= START < STOP <= 1")
    return lo, hi


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("volumes", type=Path, nargs="+", help="volume files to evaluate (any grid of the same extent)")
    p.add_argument("--reference", type=Path, required=True, help="reference volume (golden standard or truth)")
    p.add_argument("--region", help="restrict to an x range, e.g. x=0.6:1.0 (the held-out part)")
    p.add_argument("-o", "--out", type=Path, default=Path("metrics.json"), help="metrics file (JSON)")


def run(args) -> int:
    from ..metrics.evaluate import evaluate, metrics_table
    region = parse_region(args.region)
    ref = read_volume(args.reference)
    vols = {p.stem: read_volume(p) for p in args.volumes}
    for name, v in vols.items():
        if any(abs(a - b) > 0.02 * b for a, b in zip(v.extent_m, ref.extent_m)):
            raise UserError(f"{name}: extent {v.extent_m} m differs from the reference's {ref.extent_m} m")
    result = {f"vs_{args.reference.stem}": evaluate(ref, vols, region)}
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps({**result, "region_x": region}, indent=2))
    print(metrics_table(result))
    print(f"wrote {args.out}")
    return 0

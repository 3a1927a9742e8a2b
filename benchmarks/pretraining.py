"""Pre-training on the demo's scale: RAPID pre-trained + fine-tuned vs trained from scratch vs
zero-shot, and the baselines, over several seeds (issue #14's check).

Runs ``rapidtomo demo`` (the demo preset: the shipped pre-trained model ``builtin:demo``, whose
corpus excludes seeds 0-3) once per seed in ``OUT/SAMPLE_sSEED`` (a finished run is skipped by
the pipeline), then reads each run's ``metrics.json`` (held-out part) and prints, per reference
(truth, golden standard): each volume's mean ± sample std over the seeds for PCC, MS-SSIM, BER
and DICE, and for how many seeds pre-trained + fine-tuned RAPID beats RAPID from scratch on every
metric (higher PCC, MS-SSIM, DICE; lower BER).

Usage: python benchmarks/pretraining.py --out runs/pretraining [--seeds 0 1 2 3] [--sample ic|layout]
       [--run SEED=DIR ...]   (a run directory of that seed made earlier: the demo brings it up to date)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

METRICS = ("pcc", "ms_ssim", "ber", "dice")
LOWER_IS_BETTER = {"ber"}
ROWS = ("rapid", "rapid_scratch", "rapid_zero_shot", "approximant", "fbp", "sart")


def run_seed(out: Path, sample: str, seed: int, run_dir: Path | None = None) -> dict:
    run_dir = run_dir or out / f"{sample}_s{seed}"
    cmd = [sys.executable, "-m", "rapidtomo.cli", "demo", "--out", str(run_dir), "--seed", str(seed),
           "--sample", sample]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def beats(a: dict, b: dict) -> bool:
    """Whether metrics ``a`` beat ``b`` on every metric."""
    return all(a[k] < b[k] if k in LOWER_IS_BETTER else a[k] > b[k] for k in METRICS)


def table(results: list[dict], seeds: list[int]) -> str:
    lines = []
    for ref in ("vs_truth", "vs_golden"):
        per_seed = [r[ref] for r in results if ref in r]
        if not per_seed:
            continue
        wins = sum(beats(r["rapid"], r["rapid_scratch"]) for r in per_seed)
        lines.append(f"{ref} (held-out part; mean ± std over seeds {seeds}); pre-trained + fine-tuned beats "
                     f"scratch on all four metrics in {wins} of {len(per_seed)} seeds")
        lines.append(f"  {'':<16}" + "".join(f"{m.upper():>16}" for m in METRICS))
        for row in ROWS:
            if not all(row in r for r in per_seed):
                continue
            cells = []
            for m in METRICS:
                v = np.array([r[row][m] for r in per_seed])
                cells.append(f"{v.mean():>9.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}")
            lines.append(f"  {row:<16}" + "".join(f"{c:>16}" for c in cells))
        background = [r["background_ber"][ref] for r in results if ref in r.get("background_ber", {})]
        if background:
            lines.append(f"  {'(all background)':<16}{'':>16}{'':>16}{np.mean(background):>9.3f} ± "
                         f"{np.std(background, ddof=1) if len(background) > 1 else 0.0:.3f}")
        for s, r in zip(seeds, per_seed):
            lines.append(f"  seed {s}: " + "  ".join(f"{row} " + "/".join(f"{r[row][m]:.3f}" for m in METRICS)
                                                  for row in ("rapid", "rapid_scratch", "rapid_zero_shot", "sart")))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--sample", choices=["ic", "layout"], default="ic")
    p.add_argument("--run", action="append", default=[], metavar="SEED=DIR",
                   help="use DIR (a demo run of that seed and sample) instead of OUT/SAMPLE_sSEED")
    args = p.parse_args()
    runs = {int(k): Path(v) for k, v in (r.split("=", 1) for r in args.run)}
    results = [run_seed(args.out, args.sample, s, runs.get(s)) for s in args.seeds]
    print(table(results, args.seeds))


if __name__ == "__main__":
    main()

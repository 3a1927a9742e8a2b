"""``rapidtomo ablation RUN_DIR``: variants A–G of the network trained alike (the paper's Fig. 4)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

HELP = "train the architecture variants A–G on a finished run and compare them (the paper's Fig. 4)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a run directory from `rapidtomo pipeline` or `demo`")
    p.add_argument("--variants", default="A,B,C,D,E,F,G", help="comma-separated variants")
    p.add_argument("--epochs", type=int, help="epochs per variant (default: the run's training settings)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="train each variant once per seed and "
                   "report mean ± sample std (default: the run's seed alone; the paper's comparison needs >= 3)")


def run(args) -> int:
    from ..experiments.ablation import VARIANTS, ablation, write_ablation
    variants = [v.strip().upper() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise UserError(f"--variants: unknown {','.join(bad)} (choose from {','.join(VARIANTS)})")
    records = ablation(args.run_dir, variants, args.epochs, args.seeds)
    paths = write_ablation(args.run_dir, records)
    print(f"seeds {records[0]['seeds']}: mean ± sample std over the seeds, held-out part")
    tables = [(f"vs {records[0]['reference']}", records)]
    if "vs_golden" in records[0]:
        tables.append(("vs golden", [{**r, **r["vs_golden"]} for r in records]))
    for title, rows in tables:
        print(f"{title:<10}{'params':>10}{'PCC':>14}{'MS-SSIM':>14}{'BER':>14}{'DICE':>14}{'train s':>9}")
        for r in rows:
            cells = "".join(f"{r[k]:>7.3f} ± {r[k + '_std']:.3f}" for k in ("pcc", "ms_ssim", "ber", "dice"))
            print(f"{r['variant']:<10}{r['parameters']:>10}{cells}{r['train_seconds']:>9.1f}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0

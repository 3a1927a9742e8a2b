"""The architecture ablation (the paper's Fig. 4): variants A–G trained the same way on one run,
over one or more seeds."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import rundir
from ..io import read_volume
from ..io.atomic import atomic_path
from ..nn.unet import COARSE_INPUTS
from .sweeps import METRICS, _run_settings

VARIANTS = ("A", "B", "C", "D", "E", "F", "G")
log = logging.getLogger("rapidtomo.ablation")


def _summary(runs: list[dict]) -> dict[str, float]:
    """Means over the seeds of each metric, ``<metric>_std`` (sample std; 0 for one seed)."""
    out = {}
    for k in METRICS:
        values = np.array([r[k] for r in runs])
        out[k] = float(values.mean())
        out[f"{k}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def ablation(run_dir: str | Path, variants=VARIANTS, epochs: int | None = None,
             seeds: Sequence[int] | None = None) -> list[dict]:
    """Train each variant with the run's training settings, once per seed, predict with the run's
    prediction settings, and evaluate on the held-out part against the truth (the run's
    ``phantom.h5``) and the golden standard.

    ``seeds`` default to the run's seed alone; the paper's comparison needs several (the spread
    between seeds of one variant is the noise against which variants differ). A seed sets the
    network's initialisation and the patch order and flips of every epoch. One record per
    variant: ``{variant, parameters, seeds, reference, pcc, ms_ssim, ber, dice, train_seconds}``
    with the means over the seeds against ``reference`` (``truth`` where the run has one, else
    ``golden``), ``<metric>_std`` (sample standard deviation; 0 for one seed), ``vs_golden`` (the
    same against the golden standard, when the reference is the truth) and ``per_seed`` (each
    seed's metrics, likewise). Models go to ``RUN_DIR/ablation/model_<V>[_s<seed>].pt``.
    """
    from ..infer import predict
    from ..metrics.evaluate import evaluate
    from ..config import settings_from
    from ..train import TrainSettings, heldout_region, train
    run_dir = Path(run_dir)
    cfg = _run_settings(run_dir)
    run_train = cfg["train"]
    fixed = [k for k in ("widths", "rates", "z_rates") if getattr(run_train, k) is not None]
    if fixed:
        log.warning(f"{run_dir / rundir.SETTINGS}: [train] sets {', '.join(fixed)}: every variant gets them as given, "
                    f"so parameter counts are not matched (and z_rates make D–G alike)")
    appx = read_volume(run_dir / rundir.APPROXIMANT)
    golden = read_volume(run_dir / rundir.GOLDEN)
    fine = {i: read_volume(run_dir / rundir.baseline(i)) for i in run_train.inputs if i not in COARSE_INPUTS}
    references = {"golden": golden}
    if (run_dir / rundir.PHANTOM).exists():
        references = {"truth": read_volume(run_dir / rundir.PHANTOM), **references}
    primary = next(iter(references))
    region_x, _ = heldout_region(appx.shape, run_train)
    region = (region_x.start / appx.shape[-1], 1.0)  # the part that no training or validation patch saw
    seeds = list(seeds) if seeds else [run_train.seed]
    records = []
    for v in variants:
        runs, parameters = [], 0
        for seed in seeds:
            overrides = {"seed": seed, "variant": v, **({"epochs": epochs} if epochs else {})}
            settings = settings_from(TrainSettings, "train", {**run_train.model_dump(), **overrides})
            model = run_dir / "ablation" / (f"model_{v}.pt" if len(seeds) == 1 else f"model_{v}_s{seed}.pt")
            t0 = time.perf_counter()
            result = train(appx, golden, settings, model, baselines=fine)
            seconds = time.perf_counter() - t0
            parameters = sum(p.numel() for p in result["network"].parameters())
            pred = {"rapid": predict(model, appx if "approximant" in settings.inputs else None, cfg["predict"],
                                     baselines=fine)}
            m = {ref: evaluate(vol, pred, region)["rapid"] for ref, vol in references.items()}
            run = {"seed": seed, **{k: float(m[primary][k]) for k in METRICS}, "train_seconds": seconds}
            if primary != "golden":
                run["vs_golden"] = {k: float(m["golden"][k]) for k in METRICS}
            runs.append(run)
        record = {"variant": v, "parameters": parameters, "seeds": seeds, "reference": primary, **_summary(runs),
                  "train_seconds": float(np.mean([r["train_seconds"] for r in runs]))}
        if primary != "golden":
            record["vs_golden"] = _summary([r["vs_golden"] for r in runs])
        records.append({**record, "per_seed": runs})
    return records


def write_ablation(run_dir: str | Path, records: list[dict]) -> dict[str, Path]:
    """``ablation.json`` and ``ablation.png`` (a bar per variant and metric, the mean over seeds
    with ± one standard deviation, against the records' reference) in ``run_dir``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    run_dir = Path(run_dir)
    paths = {"json": run_dir / "ablation.json", "png": run_dir / "ablation.png"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(records, indent=2))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    names = [r["variant"] for r in records]
    for ax, metric in zip(axes, METRICS):
        ax.bar(names, [r[metric] for r in records], yerr=[r.get(f"{metric}_std", 0.0) for r in records],
               color="tab:blue", capsize=3)
        ax.set_title(f"{metric.upper().replace('_', '-')} vs {records[0].get('reference', 'golden')}")
        lo = min(r[metric] for r in records)
        ax.set_ylim(max(0.0, lo - 0.1 * abs(lo)), None)
    fig.tight_layout()
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return paths

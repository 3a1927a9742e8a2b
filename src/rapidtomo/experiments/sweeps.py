"""Quality against the number of angles and the angular range (the paper's Fig. 2).

For each value, a new reduced scan of the run's sample is simulated (same phantom, probe, scan
and noise level), its approximant computed with the probe the run's approximant used (the golden
stage's retrieved ``golden_probe.h5``; without one, the scan's own guess, as the pipeline does)
and passed through the run's trained network (or a
network retrained for that value with ``retrain=True``) with the reduced-angle baselines the
network takes as inputs (``[train] inputs``; their time counts in RAPID's); FBP and SART
baselines optionally. Each
result is evaluated against the run's golden standard on the held-out part.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from .. import rundir
from ..errors import UserError
from ..io import read_volume
from ..io.atomic import atomic_path
from ..nn.unet import COARSE_INPUTS
from ..progress import progress

METRICS = ("pcc", "ms_ssim", "ber", "dice")


def _run_settings(run_dir: Path) -> dict:
    """The finished run's validated settings per stage (:func:`rapidtomo.pipeline.stage_settings`)."""
    from ..config import settings_from
    from ..pipeline import PipelineSettings, stage_settings
    path = run_dir / rundir.SETTINGS
    if not path.exists():
        raise UserError(f"{path}: not found — run `rapidtomo pipeline {run_dir}` (or demo) first")
    config = json.loads(path.read_text())
    pipe = settings_from(PipelineSettings, "pipeline", config.get("pipeline", {}), str(path))
    return stage_settings(config, pipe, path)


def sweep(run_dir: str | Path, kind: str, values: list[float], baselines: bool = False,
          retrain: bool = False) -> list[dict]:
    """Records ``{value, method, pcc, ms_ssim, ber, dice, seconds}`` for ``kind`` ∈ {angles, range}."""
    from ..infer import predict
    from ..metrics.evaluate import evaluate
    from ..physics.geometry import angle_set_deg
    from ..recon.approximant import approximant
    from ..recon.two_step import two_step
    from ..simulate import make_probe, make_scan
    from ..io import read_probe_file
    from ..train import heldout_region, train
    run_dir = Path(run_dir)
    if kind not in ("angles", "range"):
        raise UserError(f"sweep kind must be 'angles' or 'range', got {kind!r}")
    settings = _run_settings(run_dir)
    sim, tsettings = settings["simulate"], settings["train"]
    phantom = read_volume(run_dir / rundir.PHANTOM)
    golden = read_volume(run_dir / rundir.GOLDEN)
    probe = make_probe(sim, phantom.voxel_size_m[2])
    records = []
    for value in progress(values, desc=f"sweep {kind}", total=len(values), unit="point"):
        n, theta = (int(value), sim.theta_max_deg) if kind == "angles" else (sim.n_reduced, float(value))
        rng = np.random.default_rng(sim.seed + 1000 + n)
        scan = make_scan(phantom, angle_set_deg(n, theta), sim, probe, rng, f"scan {kind}={value:g}")
        appx_scan = scan  # the baselines retrieve their probe from the scan's guess, as in the run
        if (run_dir / rundir.GOLDEN_PROBE).exists():
            appx_scan = dataclasses.replace(scan, probe=read_probe_file(run_dir / rundir.GOLDEN_PROBE, scan)[0])
        t0 = time.perf_counter()
        appx = approximant(appx_scan, settings["approximant"])
        t_appx = time.perf_counter() - t0
        region_x, _ = heldout_region(appx.shape, tsettings)
        region = (region_x.start / appx.shape[-1], 1.0)
        vols, seconds = {"approximant": appx}, {"approximant": t_appx}
        fine = [i for i in tsettings.inputs if i not in COARSE_INPUTS]  # baselines the network takes
        for m in dict.fromkeys([*(("fbp", "sart") if baselines else ()), *fine]):
            t0 = time.perf_counter()
            vols[m] = two_step(scan, settings["baseline"].model_copy(update={"method": m}))
            seconds[m] = time.perf_counter() - t0
        inputs = {m: vols[m] for m in fine}
        model = run_dir / rundir.MODEL
        if retrain:
            model = run_dir / "sweeps" / f"model_{kind}_{value:g}.pt"
            train(appx, golden, tsettings, model, baselines=inputs)
        t0 = time.perf_counter()
        vols["rapid"] = predict(model, appx if "approximant" in tsettings.inputs else None, settings["predict"],
                                baselines=inputs)
        seconds["rapid"] = (t_appx if "approximant" in tsettings.inputs else 0.0) + time.perf_counter() - t0 \
            + sum(seconds[m] for m in fine)
        vols = {m: v for m, v in vols.items() if m in ("rapid", "approximant") or baselines}
        for name, m in evaluate(golden, vols, region).items():
            records.append({"value": value, "method": name, **{k: float(m[k]) for k in METRICS},
                            "seconds": seconds[name]})
    return records


def write_sweep(run_dir: str | Path, kind: str, records: list[dict]) -> dict[str, Path]:
    """``sweep_<kind>.json``, ``.csv`` and ``.png`` (four metric panels) in ``run_dir``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    run_dir = Path(run_dir)
    paths = {ext: run_dir / f"sweep_{kind}.{ext}" for ext in ("json", "csv", "png")}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps({"kind": kind, "records": records}, indent=2))
    with atomic_path(paths["csv"]) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(records[0]))
            w.writeheader()
            w.writerows(records)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    for ax, metric in zip(axes, METRICS):
        for method in dict.fromkeys(r["method"] for r in records):
            rs = [r for r in records if r["method"] == method]
            ax.plot([r["value"] for r in rs], [r[metric] for r in rs], "o-", label=method)
        ax.set_xlabel("number of angles" if kind == "angles" else "θmax (degrees)")
        ax.set_title(metric.upper().replace("_", "-"))
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return paths

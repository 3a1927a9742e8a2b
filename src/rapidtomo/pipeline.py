"""The whole method in one run directory: simulate → golden → baselines → approximant → train →
predict → evaluate → report.

Each stage reads and writes files in ``RUN_DIR`` and is skipped when its outputs exist and its
*key* (a hash of its settings and of its inputs' keys, or of a user file's size and mtime) is
the one recorded in ``RUN_DIR/pipeline_state.json``: a crashed or edited run resumes where it
stopped, and editing one stage's settings reruns that stage and those after it.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from .config import Settings, load_config_file
from .errors import UserError
from .io.atomic import atomic_path

STATE_FILE = "pipeline_state.json"


class PipelineSettings(Settings):
    """Section ``[pipeline]``: where the data come from (a simulation, or your own files)."""

    scan_nominal: str | None = Field(None, description="your nominal (many-angle) scan file; default: simulate")
    scan_reduced: str | None = Field(None, description="your reduced-angle scan file; default: simulate")
    phantom: str | None = Field(None, description="a volume to simulate, or the truth for your scans (optional)")
    golden: str | None = Field(None, description="a golden standard made elsewhere (volume file on the nominal "
                               "grid); default: made here from the nominal scan")
    baselines: list[str] = Field(["fbp", "sart"], description="baselines from the reduced scan")
    seed: int = Field(0, description="seed for the simulation and the training")


@dataclass
class Stage:
    """One step: ``run(ctx)`` writes ``outputs`` (names in the run dir) from ``inputs``."""

    name: str
    inputs: list[str]
    outputs: list[str]
    settings: dict[str, Any]
    run: Callable[["Context"], dict | None]
    external: list[str] = field(default_factory=list)  # user files outside the run dir


@dataclass
class Context:
    run_dir: Path
    config: dict[str, Any]
    pipeline: PipelineSettings

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.config.get(name, {}))


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def stage_key(stage: Stage, upstream_keys: list[str]) -> str:
    """Hash of the stage's settings, its upstream stages' keys and its external files' stamps."""
    upstream = sorted(upstream_keys)
    ext = [_file_key(Path(p)) for p in stage.external]
    blob = json.dumps({"settings": stage.settings, "up": upstream, "ext": ext}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_stages(ctx: Context, stages: list[Stage], force: bool = False, log=print) -> list[dict[str, Any]]:
    """Run the stages in order, skipping those whose key and outputs are unchanged.

    Returns one row per stage: name, status (``ran``/``skipped``), seconds, outputs.
    """
    state_path = ctx.path(STATE_FILE)
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    keys: dict[str, str] = {}
    produced: dict[str, str] = {}  # output file → stage name
    rows = []
    for st in stages:
        for o in st.outputs:
            produced[o] = st.name
        upstream = {produced[i] for i in st.inputs if i in produced and produced[i] != st.name}
        key = stage_key(st, [keys[name] for name in upstream])
        keys[st.name] = key
        done = state.get(st.name, {})
        if not force and done.get("key") == key and all(ctx.path(o).exists() for o in st.outputs):
            rows.append({"stage": st.name, "status": "skipped", "seconds": done.get("seconds", 0.0),
                         "outputs": st.outputs})
            log(f"[{st.name}] unchanged, skipped")
            continue
        log(f"[{st.name}] running ...")
        t0 = time.perf_counter()
        extra = st.run(ctx) or {}
        seconds = time.perf_counter() - t0
        state[st.name] = {"key": key, "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        with atomic_path(state_path) as tmp:
            tmp.write_text(json.dumps(state, indent=2, default=str))
        rows.append({"stage": st.name, "status": "ran", "seconds": seconds, "outputs": st.outputs})
        log(f"[{st.name}] done in {seconds:.1f} s")
    return rows


def stage_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of stage, status and time (the time of the last real run when skipped)."""
    lines = [f"{'stage':<12} {'status':<8} {'seconds':>9}", "-" * 31]
    lines += [f"{r['stage']:<12} {r['status']:<8} {r['seconds']:>9.1f}" for r in rows]
    lines.append(f"{'total':<12} {'':<8} {sum(r['seconds'] for r in rows):>9.1f}")
    return "\n".join(lines)


def load_pipeline_config(config_path: str | Path | None) -> tuple[dict[str, Any], PipelineSettings]:
    config = load_config_file(config_path) if config_path else {}
    try:
        pipe = PipelineSettings(**config.get("pipeline", {}))
    except Exception as e:  # pydantic.ValidationError
        raise UserError(f"{config_path}: [pipeline] {str(e).splitlines()[-1].strip()}") from None
    return config, pipe


# ---------------------------------------------------------------- the stages

def _simulate(ctx: Context) -> dict:
    from .io import read_volume, write_scan, write_volume
    from .runinfo import provenance
    from .simulate import SimulateSettings, simulate
    settings = SimulateSettings(**{"seed": ctx.pipeline.seed, **ctx.section("simulate")})
    phantom = read_volume(ctx.pipeline.phantom) if ctx.pipeline.phantom else None
    phantom, nominal, reduced = simulate(settings, phantom)
    phantom.attrs.update(provenance(settings.to_dict()))
    write_volume(ctx.path("phantom.h5"), phantom)
    write_scan(ctx.path("scan_nominal.h5"), nominal)
    write_scan(ctx.path("scan_reduced.h5"), reduced)
    return {"n_patterns_nominal": int(nominal.intensities.shape[0] * nominal.intensities.shape[1])}


def scan_paths(ctx: Context) -> tuple[Path, Path]:
    p = ctx.pipeline
    if p.scan_nominal or p.scan_reduced:
        if not (p.scan_nominal and p.scan_reduced) and not p.golden:
            raise UserError("[pipeline] give both scan_nominal and scan_reduced (or scan_reduced and golden)")
        return (Path(p.scan_nominal) if p.scan_nominal else None, Path(p.scan_reduced))
    return ctx.path("scan_nominal.h5"), ctx.path("scan_reduced.h5")


def _golden(ctx: Context) -> dict:
    from .io import read_scan, write_volume
    from .recon import two_step
    from .recon.two_step import TwoStepSettings
    from .runinfo import provenance
    nominal, _ = scan_paths(ctx)
    settings = TwoStepSettings(**{"method": "sart", **ctx.section("golden")})
    vol = two_step(read_scan(nominal), settings, cache_path=ctx.path("golden.cache.h5"))
    vol.attrs.update(provenance(settings.to_dict(), [nominal]))
    write_volume(ctx.path("golden.h5"), vol)
    return {}


def _baseline(method: str):
    def run(ctx: Context) -> dict:
        from .io import read_scan, write_volume
        from .recon import two_step
        from .recon.two_step import TwoStepSettings
        from .runinfo import provenance
        _, reduced = scan_paths(ctx)
        settings = TwoStepSettings(**{**ctx.section("golden"), **ctx.section("baseline"), "method": method})
        vol = two_step(read_scan(reduced), settings, cache_path=ctx.path("baseline.cache.h5"))
        vol.attrs.update(provenance(settings.to_dict(), [reduced]))
        write_volume(ctx.path(f"{method}.h5"), vol)
        return {}
    return run


def _approximant(ctx: Context) -> dict:
    from .io import read_scan, write_volume
    from .recon.approximant import ApproximantSettings, approximant
    from .runinfo import provenance
    _, reduced = scan_paths(ctx)
    settings = ApproximantSettings(**ctx.section("approximant"))
    vol = approximant(read_scan(reduced), settings)
    vol.attrs.update(provenance(settings.to_dict(), [reduced]))
    write_volume(ctx.path("approximant.h5"), vol)
    return {"loss_history": vol.attrs["loss_history"]}


def _train(ctx: Context) -> dict:
    from .io import read_volume
    from .train import TrainSettings, train
    settings = TrainSettings(**{"seed": ctx.pipeline.seed, **ctx.section("train")})
    result = train(read_volume(ctx.path("approximant.h5")), read_volume(golden_path(ctx)), settings,
                   ctx.path("model.pt"))
    return {"epochs": len(result["history"]), "samples_per_s": result.get("samples_per_s"),
            "n_train": result.get("n_train"), "n_val": result.get("n_val")}


def _predict(ctx: Context) -> dict:
    from .infer import PredictSettings, predict
    from .io import read_volume, write_volume
    vol = predict(ctx.path("model.pt"), read_volume(ctx.path("approximant.h5")),
                  PredictSettings(**ctx.section("predict")))
    write_volume(ctx.path("prediction.h5"), vol)
    return {}


def golden_path(ctx: Context) -> Path:
    return Path(ctx.pipeline.golden) if ctx.pipeline.golden else ctx.path("golden.h5")


VOLUMES = {"rapid": "prediction.h5", "approximant": "approximant.h5", "fbp": "fbp.h5", "sart": "sart.h5"}


def _evaluate(ctx: Context) -> dict:
    from .io import read_volume
    from .io.atomic import atomic_path
    from .metrics.evaluate import evaluate, metrics_table
    vols = {name: read_volume(ctx.path(f)) for name, f in VOLUMES.items() if ctx.path(f).exists()}
    region = heldout_fraction(ctx, vols["approximant"].shape)
    result = {"vs_golden": evaluate(read_volume(golden_path(ctx)), vols, region)}
    user_truth = ctx.pipeline.phantom and ctx.pipeline.scan_reduced  # the truth of the user's own scans
    truth = Path(ctx.pipeline.phantom) if user_truth else ctx.path("phantom.h5")
    if truth.exists():
        result["vs_truth"] = evaluate(read_volume(truth), vols, region)
    with atomic_path(ctx.path("metrics.json")) as tmp:
        tmp.write_text(json.dumps({**result, "region_x_fraction": region}, indent=2))
    print(metrics_table(result))
    return {}


def _report(ctx: Context) -> dict:
    from .report import build_report
    return {"report": str(build_report(ctx.run_dir))}


def heldout_fraction(ctx: Context, approximant_shape: tuple[int, int, int]) -> tuple[float, float]:
    """The held-out x range (fractions of the width) that training never sees."""
    from .train import TrainSettings, heldout_region
    approx_x, _ = heldout_region(approximant_shape, TrainSettings(**ctx.section("train")))
    return (approx_x.start / approximant_shape[-1], 1.0)


def build_stages(ctx: Context) -> list[Stage]:
    """The stage list for this run's inputs (simulated or the user's files)."""
    p = ctx.pipeline
    sec = ctx.section
    stages = []
    nominal, reduced = scan_paths(ctx)
    user_scans = bool(p.scan_reduced)
    if not user_scans:
        stages.append(Stage("simulate", [], ["phantom.h5", "scan_nominal.h5", "scan_reduced.h5"],
                            {**sec("simulate"), "seed": p.seed, "phantom": p.phantom}, _simulate,
                            [p.phantom] if p.phantom else []))
    scans = [] if user_scans else ["scan_nominal.h5", "scan_reduced.h5"]
    if not p.golden:
        stages.append(Stage("golden", scans, ["golden.h5"], {**sec("golden")}, _golden,
                            [str(nominal)] if user_scans else []))
    for m in p.baselines:
        stages.append(Stage(m, scans, [f"{m}.h5"], {**sec("golden"), **sec("baseline"), "method": m},
                            _baseline(m), [str(reduced)] if user_scans else []))
    stages.append(Stage("approximant", scans, ["approximant.h5"], sec("approximant"), _approximant,
                        [str(reduced)] if user_scans else []))
    golden_in = [] if p.golden else ["golden.h5"]
    stages.append(Stage("train", ["approximant.h5"] + golden_in, ["model.pt"], {**sec("train"), "seed": p.seed},
                        _train, [p.golden] if p.golden else []))
    stages.append(Stage("predict", ["model.pt", "approximant.h5"], ["prediction.h5"], sec("predict"), _predict))
    stages.append(Stage("evaluate", ["prediction.h5", "approximant.h5"] + golden_in + [f"{m}.h5" for m in p.baselines],
                        ["metrics.json"], {}, _evaluate))
    stages.append(Stage("report", ["metrics.json"], ["report/index.html"], {}, _report))
    return stages


def validate_sections(config: dict[str, Any], config_path) -> None:
    """Check every stage's section before any work, so a typo fails at once with one line."""
    from .config import build_settings
    from .infer import PredictSettings
    from .recon import ApproximantSettings, TwoStepSettings
    from .simulate import SimulateSettings
    from .train import TrainSettings
    known = {"pipeline": None, "simulate": SimulateSettings, "golden": TwoStepSettings, "baseline": TwoStepSettings,
             "approximant": ApproximantSettings, "train": TrainSettings, "predict": PredictSettings}
    for name in config:
        if name not in known:
            raise UserError(f"{config_path}: unknown section [{name}] (known: {', '.join(known)})")
        if known[name] is not None and config_path is not None:
            build_settings(known[name], name, config_path)


def run_pipeline(run_dir: str | Path, config_path: str | Path | None = None, seed: int | None = None,
                 force: bool = False, log=print) -> list[dict[str, Any]]:
    """Run (or resume) every stage in ``run_dir``; returns the stage table rows (also saved)."""
    run_dir = Path(run_dir)
    config, pipe = load_pipeline_config(config_path)
    if seed is not None:
        pipe = pipe.model_copy(update={"seed": seed})
    for key in ("scan_nominal", "scan_reduced", "phantom", "golden"):
        value = getattr(pipe, key)
        if value and not Path(value).exists():
            raise UserError(f"{config_path}: [pipeline] {key}: file {value} not found")
    validate_sections(config, config_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(run_dir, config, pipe)
    rows = run_stages(ctx, build_stages(ctx), force=force, log=log)
    with atomic_path(run_dir / "timings.json") as tmp:
        tmp.write_text(json.dumps({r["stage"]: r["seconds"] for r in rows}, indent=2))
    with atomic_path(run_dir / "pipeline_settings.json") as tmp:
        tmp.write_text(json.dumps({"pipeline": pipe.to_dict(), **config}, indent=2, default=str))
    return rows

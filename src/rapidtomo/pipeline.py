"""The whole method in one run directory: simulate → golden → baselines → approximant → [pretrain]
→ train → predict → evaluate → report (docs/pretraining.md for the stages that pre-training adds).

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
from typing import Any, Callable, Literal

from pydantic import Field, model_validator

from . import rundir
from .cluster import Cluster, ClusterSettings
from .config import Settings, load_config_file, settings_from
from .errors import UserError
from .io.atomic import atomic_path
from .nn.unet import COARSE_INPUTS
from .pretrain import TRAIN_SETTINGS_UNUSED
from .runinfo import file_stamp
from .stages import run_approximant, run_evaluate, run_predict, run_simulate, run_train, run_two_step


# the network's inputs in a pipeline unless [train] inputs says otherwise (docs/network.md, "Inputs")
PIPELINE_INPUTS = ["approximant", "sart"]


class PipelineSettings(Settings):
    """Section ``[pipeline]``: where the data come from (a simulation, or your own files)."""

    scan_nominal: str | None = Field(None, description="your nominal (many-angle) scan file; default: simulate")
    scan_reduced: str | None = Field(None, description="your reduced-angle scan file; default: simulate")
    phantom: str | None = Field(None, description="a volume to simulate, or the truth for your scans (optional)")
    golden: str | None = Field(None, description="a golden standard made elsewhere (volume file on the nominal "
                               "grid); default: made here from the nominal scan")
    baselines: list[Literal["fbp", "sart"]] = Field(["fbp", "sart"], description="baselines from the reduced scan")
    seed: int = Field(0, description="seed for the simulation and the training")

    @model_validator(mode="after")
    def _check_inputs(self):
        if self.scan_nominal and not self.scan_reduced:
            raise ValueError("scan_nominal needs scan_reduced too (the approximant is made from it)")
        if self.scan_reduced and not (self.scan_nominal or self.golden):
            raise ValueError("scan_reduced needs scan_nominal (for the golden standard) or golden")
        return self


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
    """A run: its folder, the config file's raw sections, and the validated settings per stage."""

    run_dir: Path
    config: dict[str, Any]
    pipeline: PipelineSettings
    settings: dict[str, Settings] = field(default_factory=dict)
    log: Callable[[str], None] = print  # the run's messages (the pipeline's log)
    cluster: Cluster | None = None  # where per-angle and per-tile tasks run ([cluster]), started on first use

    def path(self, name: str) -> Path:
        return self.run_dir / name

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.config.get(name, {}))


def stage_key(stage: Stage, upstream_keys: list[str]) -> str:
    """Hash of the stage's settings, its upstream stages' keys and its external files' stamps."""
    upstream = sorted(upstream_keys)
    ext = [file_stamp(p) for p in stage.external]
    blob = json.dumps({"settings": stage.settings, "up": upstream, "ext": ext}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_stages(ctx: Context, stages: list[Stage], force: bool = False, log=print) -> list[dict[str, Any]]:
    """Run the stages in order, skipping those whose key and outputs are unchanged.

    Returns one row per stage: name, status (``ran``/``skipped``), seconds, outputs.
    """
    state_path = ctx.path(rundir.STATE)
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
    lines = [f"{'stage':<15} {'status':<8} {'seconds':>9}", "-" * 34]  # predict_scratch fits
    lines += [f"{r['stage']:<15} {r['status']:<8} {r['seconds']:>9.1f}" for r in rows]
    lines.append(f"{'total':<15} {'':<8} {sum(r['seconds'] for r in rows):>9.1f}")
    return "\n".join(lines)


def load_pipeline_config(config_path: str | Path | None, overrides: dict[str, dict[str, Any]] | None = None
                         ) -> tuple[dict[str, Any], PipelineSettings]:
    """The config file's sections (``{}`` without a file) with ``overrides`` (``{section: {key:
    value}}``) applied over them, and the validated ``[pipeline]`` section."""
    config = load_config_file(config_path) if config_path else {}
    for name, value in config.items():
        if not isinstance(value, dict):
            raise UserError(f"{config_path}: {name} = ... outside a section; put it under [pipeline] or a stage")
    for name, values in (overrides or {}).items():
        config[name] = {**config.get(name, {}), **values}
    return config, settings_from(PipelineSettings, "pipeline", config.get("pipeline", {}), _source(config_path))


def _source(config_path) -> str:
    return str(config_path) if config_path is not None else "settings"


def stage_settings(config: dict[str, Any], pipe: PipelineSettings, config_path=None) -> dict[str, Settings]:
    """Every stage's validated settings, before any work: a typo or a bad value fails at once with
    one line naming the file, the section and the field. Keys: simulate, golden, baseline (the
    ``[golden]`` values, then ``[baseline]``'s), approximant, train (``inputs`` default
    :data:`PIPELINE_INPUTS`), predict, cluster, and one per baseline method of ``[pipeline] baselines``
    and of the network's inputs (:func:`baseline_methods`; the baseline settings with that method)."""
    from .infer import PredictSettings
    from .pretrain import PretrainSettings
    from .recon import ApproximantSettings, TwoStepSettings
    from .simulate import SimulateSettings
    from .train import TrainSettings
    known = {"pipeline", "simulate", "golden", "baseline", "approximant", "pretrain", "train", "predict", "cluster"}
    for name in config:
        if name not in known:
            raise UserError(f"{config_path}: unknown section [{name}] (known: {', '.join(sorted(known))})")
    src = _source(config_path)
    sec = lambda name: dict(config.get(name, {}))  # noqa: E731
    train = settings_from(TrainSettings, "train", {"seed": pipe.seed, "inputs": PIPELINE_INPUTS, **sec("train")}, src)
    out: dict[str, Settings] = {
        "simulate": settings_from(SimulateSettings, "simulate", {"seed": pipe.seed, **sec("simulate")}, src),
        "golden": settings_from(TwoStepSettings, "golden", {"method": "sart", **sec("golden")}, src),
        "baseline": settings_from(TwoStepSettings, "baseline", {"method": "fbp", **sec("golden"), **sec("baseline")},
                                  src),
        "approximant": settings_from(ApproximantSettings, "approximant", sec("approximant"), src),
        "train": train,
        "predict": settings_from(PredictSettings, "predict", sec("predict"), src),
        "pretrain": settings_from(PretrainSettings, "pretrain", sec("pretrain"), src),
        "cluster": settings_from(ClusterSettings, "cluster", sec("cluster"), src),
    }
    for m in baseline_methods(pipe, train):
        out[m] = settings_from(TwoStepSettings, "baseline", {**sec("golden"), **sec("baseline"), "method": m}, src)
    return out


def baseline_methods(pipe: PipelineSettings, train) -> list[str]:
    """The reduced-angle baselines a run makes: ``[pipeline] baselines`` and those the network takes
    as inputs (``[train] inputs``: sart, fbp)."""
    return list(pipe.baselines) + [i for i in train.inputs if i not in COARSE_INPUTS and i not in pipe.baselines]


def check_patch_fits(ctx: "Context", config_path=None) -> None:
    """Refuse, before any work, a training patch larger than the approximant's training part.

    The approximant of a ``(Z, Y, X)`` nominal grid has ``(Y + 1) // 2`` rows and trains on the
    first ``train_fraction`` of its ``(X + 1) // 2`` columns (:mod:`rapidtomo.train.split`).
    """
    from .recon.approximant import coarse_shape
    from .train import split_index
    shape = _nominal_shape(ctx)
    if shape is None:
        return
    train = ctx.settings["train"]
    _, rows, cols = coarse_shape(shape, ctx.settings["approximant"].n_slabs)
    fit = min(rows, split_index(cols, train.train_fraction))
    if train.patch_size() > fit:
        raise UserError(f"{_source(config_path)}: [train] patch {train.patch_size()} ({train.preset} preset unless "
                        f"set) does not fit the approximant of the {shape[0]}×{shape[1]}×{shape[2]} sample "
                        f"({rows} rows, {split_index(cols, train.train_fraction)} training columns); "
                        f"set [train] patch to at most {fit}")


def _nominal_shape(ctx: "Context") -> tuple[int, int, int] | None:
    """(Z, Y, X) of the nominal object grid: the phantom's, the simulation's or the reduced scan's."""
    import h5py

    from .io import open_volume
    p = ctx.pipeline
    if p.scan_reduced:
        try:
            with h5py.File(p.scan_reduced, "r") as f:
                return tuple(int(v) for v in f["/entry/sample/volume_shape"][()])
        except (OSError, KeyError, ValueError, TypeError):
            return None  # read_scan names the problem when the stage runs
    if p.phantom:
        with open_volume(p.phantom) as v:
            return v.shape
    return tuple(ctx.settings["simulate"].shape)


# ---------------------------------------------------------------- the stages

def _simulate(ctx: Context) -> dict:
    r = run_simulate(ctx.settings["simulate"], ctx.run_dir, ctx.pipeline.phantom, cluster=ctx.cluster)
    return {"n_patterns_nominal": r["n_patterns"]["nominal"]}


def scan_paths(ctx: Context) -> tuple[Path | None, Path]:
    """(nominal, reduced) scan files: the user's (``[pipeline]``), else the simulated ones."""
    p = ctx.pipeline
    if p.scan_reduced:  # PipelineSettings checked that scan_nominal or golden comes with it
        return (Path(p.scan_nominal) if p.scan_nominal else None, Path(p.scan_reduced))
    return ctx.path(rundir.SCAN_NOMINAL), ctx.path(rundir.SCAN_REDUCED)


def _golden(ctx: Context) -> dict:
    nominal, _ = scan_paths(ctx)
    r = run_two_step(nominal, ctx.path(rundir.GOLDEN), ctx.settings["golden"], "golden",
                     ctx.path(rundir.GOLDEN_CACHE), probe_path=ctx.path(rundir.GOLDEN_PROBE), cluster=ctx.cluster)
    if r.get("alignment"):
        ctx.log(f"[golden] {r['alignment']}")
    return {}


def _baseline(method: str):
    def run(ctx: Context) -> dict:
        _, reduced = scan_paths(ctx)
        r = run_two_step(reduced, ctx.path(rundir.baseline(method)), ctx.settings[method], "baseline",
                         ctx.path(rundir.BASELINE_CACHE), cluster=ctx.cluster)
        if r.get("alignment"):
            ctx.log(f"[{method}] {r['alignment']}")
        return {}
    return run


def approximant_shifts(ctx: Context) -> str | None:
    """The run-dir volume whose alignment the approximant takes: the first baseline's, when the
    baselines align (the same reduced scan as the approximant's), else None."""
    first = ctx.pipeline.baselines[0] if ctx.pipeline.baselines else None
    settings = ctx.settings.get(first)
    return rundir.baseline(first) if settings is not None and settings.align else None


def approximant_probe(ctx: Context) -> Path | None:
    """The probe file of the approximant: the golden stage's retrieved probe (as in the paper), or
    None with a golden standard made elsewhere (then the reduced scan's own ``/entry/probe``)."""
    return None if ctx.pipeline.golden else ctx.path(rundir.GOLDEN_PROBE)


def _approximant(ctx: Context) -> dict:
    _, reduced = scan_paths(ctx)
    probe = approximant_probe(ctx)
    if probe is None:
        ctx.log(f"[approximant] the golden standard {ctx.pipeline.golden} was made elsewhere, so no retrieved "
                f"probe: using the reduced scan's /entry/probe ({reduced}) as exact")
    shifts = approximant_shifts(ctx)
    r = run_approximant(reduced, ctx.path(rundir.APPROXIMANT), ctx.settings["approximant"], probe_path=probe,
                        shifts_path=ctx.path(shifts) if shifts else None)
    return {"loss_history": r["loss_history"], "probe_source": r["probe_source"]}


def _train_to(model: str, init: str | None):
    """The train stage writing ``model``, from the pre-trained model ``init`` (a run-dir name) or from scratch."""
    def run(ctx: Context) -> dict:
        settings = ctx.settings["train"]
        if init:
            epochs = ctx.settings["pretrain"].fine_tune_epochs or settings.epochs
            settings = settings.model_copy(update={"init": str(ctx.path(init)), "epochs": epochs})
        result = run_train(ctx.path(rundir.APPROXIMANT), golden_path(ctx), ctx.path(model), settings,
                           baselines=fine_inputs(ctx))
        return {"epochs": len(result["history"]), "samples_per_s": result.get("samples_per_s"),
                "n_train": result.get("n_train"), "n_val": result.get("n_val")}
    return run


def fine_inputs(ctx: Context) -> dict[str, Path]:
    """The run's baseline files that the network takes as inputs (``[train] inputs``), by name."""
    return {i: ctx.path(rundir.baseline(i)) for i in ctx.settings["train"].inputs if i not in COARSE_INPUTS}


def _predict_with(model: str, out: str):
    """The predict stage of ``model`` into ``out``, from the network's inputs (``[train] inputs``)."""
    def run(ctx: Context) -> dict:
        approx = ctx.path(rundir.APPROXIMANT) if "approximant" in ctx.settings["train"].inputs else None
        run_predict(ctx.path(model), approx, ctx.path(out), ctx.settings["predict"], baselines=fine_inputs(ctx),
                    cluster=ctx.cluster)
        return {}
    return run


def _pretrain_because(why: str):
    """The pretrain stage (:func:`rapidtomo.pretrain.pipeline_pretrain`); ``why`` it runs goes to the state."""
    def run(ctx: Context) -> dict:
        from .pretrain import pipeline_pretrain
        _, reduced = scan_paths(ctx)
        simulated = not ctx.pipeline.scan_reduced
        summary = pipeline_pretrain(reduced, ctx.path(rundir.PRETRAINED), ctx.path(rundir.CORPUS),
                                    ctx.settings["pretrain"], ctx.settings["approximant"], ctx.settings["train"],
                                    ctx.pipeline.seed if simulated else None,
                                    truth_path(ctx) if truth_path(ctx).exists() else None,
                                    approximant_probe(ctx), ctx.settings["golden"],
                                    {i: ctx.settings[i] for i in fine_inputs(ctx)})
        return {**summary, "why": why}
    return run


def pretrain_enabled(ctx: Context) -> tuple[bool, str]:
    """Whether this run pre-trains (``[pretrain] enabled``), and why: ``on``/``off`` as set; ``auto``
    is on when ``[pretrain] model`` names a model file, or when the estimated time of the corpus
    and the pre-training (:func:`rapidtomo.pretrain.estimate_pretrain_seconds`) fits ``budget_s``."""
    from .pretrain import estimate_pretrain_seconds
    s = ctx.settings["pretrain"]
    if s.enabled != "auto":
        return s.enabled == "on", f"[pretrain] enabled = {s.enabled}"
    if s.model:
        return True, f"auto: pre-trained model {s.model}"
    shape = _nominal_shape(ctx)
    if shape is None:
        return False, "auto: the scan's object grid is unknown"
    n_angles = _reduced_angles(ctx)
    est = estimate_pretrain_seconds(shape, n_angles, ctx.settings["approximant"], s, ctx.settings["train"].patch_size(),
                                    ctx.settings["golden"], {i: ctx.settings[i] for i in fine_inputs(ctx)})
    return est <= s.budget_s, f"auto: pre-training estimated at {est:.0f} s, budget {s.budget_s:.0f} s"


def _reduced_angles(ctx: Context) -> int:
    import h5py
    if ctx.pipeline.scan_reduced:
        with h5py.File(ctx.pipeline.scan_reduced, "r") as f:
            return int(f["/entry/data/angles_deg"].shape[0])
    return ctx.settings["simulate"].n_reduced


def golden_path(ctx: Context) -> Path:
    return Path(ctx.pipeline.golden) if ctx.pipeline.golden else ctx.path(rundir.GOLDEN)


def truth_path(ctx: Context) -> Path:
    """The truth: the user's phantom for their own scans, else the simulated phantom."""
    user_truth = ctx.pipeline.phantom and ctx.pipeline.scan_reduced
    return Path(ctx.pipeline.phantom) if user_truth else ctx.path(rundir.PHANTOM)


# names in metrics.json of the volumes a run evaluates (the references are golden and truth)
EVALUATED = ("rapid", "rapid_scratch", "rapid_zero_shot", "approximant", "fbp", "sart")
PRETRAINING_ONLY = ("rapid_scratch", "rapid_zero_shot")  # made only by runs that pre-train


def _evaluate(ctx: Context) -> dict:
    from .io import open_volume
    from .metrics.evaluate import Region, metrics_table
    from .train import heldout_region
    names = EVALUATED if pretrain_enabled(ctx)[0] else [n for n in EVALUATED if n not in PRETRAINING_ONLY]
    volumes = {n: ctx.path(rundir.VOLUMES[n]) for n in names if ctx.path(rundir.VOLUMES[n]).exists()}
    with open_volume(volumes["approximant"]) as a:
        shape = a.shape
    region_x, _ = heldout_region(shape, ctx.settings["train"])  # the part that training never saw
    refs = {"golden": golden_path(ctx)}
    if truth_path(ctx).exists():
        refs["truth"] = truth_path(ctx)
    result = run_evaluate(volumes, refs, ctx.path(rundir.METRICS), Region.from_x_fraction((region_x.start / shape[-1], 1.0)))
    print(metrics_table(result))
    return {}


def _report(ctx: Context) -> dict:
    from .report import build_report
    return {"report": str(build_report(ctx.run_dir))}


def build_stages(ctx: Context) -> list[Stage]:
    """The stage list for this run's inputs (simulated or the user's files).

    A stage's key hashes its raw config section (not the validated settings), so a finished run
    stays finished when a default is added to a settings class.
    """
    p = ctx.pipeline
    sec = ctx.section
    stages = []
    nominal, reduced = scan_paths(ctx)
    user_scans = bool(p.scan_reduced)
    if not user_scans:
        stages.append(Stage("simulate", [], [rundir.PHANTOM, rundir.SCAN_NOMINAL, rundir.SCAN_REDUCED],
                            {**sec("simulate"), "seed": p.seed, "phantom": p.phantom}, _simulate,
                            [p.phantom] if p.phantom else []))
    scans = [] if user_scans else [rundir.SCAN_NOMINAL, rundir.SCAN_REDUCED]
    if not p.golden:
        stages.append(Stage("golden", scans, [rundir.GOLDEN, rundir.GOLDEN_PROBE], {**sec("golden")}, _golden,
                            [str(nominal)] if user_scans else []))
    for m in baseline_methods(p, ctx.settings["train"]):
        stages.append(Stage(m, scans, [rundir.baseline(m)], {**sec("golden"), **sec("baseline"), "method": m},
                            _baseline(m), [str(reduced)] if user_scans else []))
    probe_in = [] if p.golden else [rundir.GOLDEN_PROBE]
    shifts_in = [s for s in [approximant_shifts(ctx)] if s]
    stages.append(Stage("approximant", scans + probe_in + shifts_in, [rundir.APPROXIMANT], sec("approximant"),
                        _approximant, [str(reduced)] if user_scans else []))
    golden_in = [] if p.golden else [rundir.GOLDEN]
    train_key = {**sec("train"), "seed": p.seed}
    pretrained, why = pretrain_enabled(ctx)
    predictions = [rundir.PREDICTION]
    if pretrained:  # rapid: pre-trained then fine-tuned; rapid_scratch: golden only; rapid_zero_shot: corpus only
        stages.append(Stage("pretrain", scans + probe_in, [rundir.PRETRAINED],
                            {**{k: v for k, v in sec("pretrain").items()
                                if k != "fine_tune_epochs"},  # a setting of the train stage, not of this one
                             "approximant": sec("approximant"),
                             "train": {k: v for k, v in sec("train").items() if k not in TRAIN_SETTINGS_UNUSED},
                             "golden": sec("golden"), "baseline": sec("baseline"), "seed": p.seed},
                            _pretrain_because(why),
                            ([str(reduced)] if user_scans else []) + ([ctx.settings["pretrain"].model]
                                                                      if ctx.settings["pretrain"].model else [])))
        stages.append(Stage("train_scratch", [rundir.APPROXIMANT] + golden_in, [rundir.MODEL_SCRATCH], train_key,
                            _train_to(rundir.MODEL_SCRATCH, None), [p.golden] if p.golden else []))
        stages.append(Stage("predict_scratch", [rundir.MODEL_SCRATCH, rundir.APPROXIMANT],
                            [rundir.PREDICTION_SCRATCH], sec("predict"),
                            _predict_with(rundir.MODEL_SCRATCH, rundir.PREDICTION_SCRATCH)))
        stages.append(Stage("zero_shot", [rundir.PRETRAINED, rundir.APPROXIMANT], [rundir.PREDICTION_ZERO_SHOT],
                            sec("predict"), _predict_with(rundir.PRETRAINED, rundir.PREDICTION_ZERO_SHOT)))
        predictions += [rundir.PREDICTION_SCRATCH, rundir.PREDICTION_ZERO_SHOT]
    fine = [rundir.baseline(i) for i in fine_inputs(ctx)]  # the baselines the network takes as inputs
    stages.append(Stage("train", [rundir.APPROXIMANT] + fine + golden_in + [rundir.PRETRAINED] * pretrained,
                        [rundir.MODEL], {**train_key, "fine_tune_epochs": ctx.settings["pretrain"].fine_tune_epochs}
                        if pretrained else train_key, _train_to(rundir.MODEL, rundir.PRETRAINED if pretrained else None),
                        [p.golden] if p.golden else []))
    stages.append(Stage("predict", [rundir.MODEL, rundir.APPROXIMANT] + fine, [rundir.PREDICTION], sec("predict"),
                        _predict_with(rundir.MODEL, rundir.PREDICTION)))
    stages.append(Stage("evaluate", predictions + [rundir.APPROXIMANT] + golden_in
                        + [rundir.baseline(m) for m in baseline_methods(p, ctx.settings["train"])],
                        [rundir.METRICS], {}, _evaluate))
    stages.append(Stage("report", [rundir.METRICS], [rundir.REPORT], {}, _report))
    return stages


def run_pipeline(run_dir: str | Path, config_path: str | Path | None = None, seed: int | None = None,
                 force: bool = False, log=print, dry_run: bool = False,
                 overrides: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Run (or resume) every stage in ``run_dir``; returns the stage table rows (also saved).

    ``overrides`` (``{section: {key: value}}``) replace the config file's values (``rapidtomo demo
    --sample layout`` sets ``[pipeline] phantom``); ``pipeline_settings.json`` records the result.
    ``dry_run``: print every stage's memory and time estimate (:mod:`rapidtomo.estimate`), stop
    with a :class:`UserError` if one would not fit, and return ``[]`` without writing anything."""
    from .distributed import env_world
    if env_world() > 1:
        raise UserError("the pipeline runs in one process; run `rapidtomo approximant` and `rapidtomo train` "
                        "under torchrun as separate commands (docs/user-guide.md section 6)")
    run_dir = Path(run_dir)
    config, pipe = load_pipeline_config(config_path, overrides)
    if seed is not None:
        pipe = pipe.model_copy(update={"seed": seed})
    for key in ("scan_nominal", "scan_reduced", "phantom", "golden"):
        value = getattr(pipe, key)
        if value and not Path(value).exists():
            raise UserError(f"{config_path}: [pipeline] {key}: file {value} not found")
    ctx = Context(run_dir, config, pipe, stage_settings(config, pipe, config_path), log)
    check_patch_fits(ctx, config_path)
    if dry_run:
        from .estimate import pipeline_estimates, preflight
        for est in pipeline_estimates(ctx):
            preflight(est)
        return []
    run_dir.mkdir(parents=True, exist_ok=True)
    with Cluster(ctx.settings["cluster"]) as ctx.cluster:
        rows = run_stages(ctx, build_stages(ctx), force=force, log=log)
    with atomic_path(run_dir / rundir.TIMINGS) as tmp:
        tmp.write_text(json.dumps({r["stage"]: r["seconds"] for r in rows}, indent=2))
    with atomic_path(run_dir / rundir.SETTINGS) as tmp:
        tmp.write_text(json.dumps({**config, "pipeline": pipe.to_dict()}, indent=2, default=str))
    return rows

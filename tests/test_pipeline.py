"""The pipeline's stage keys and skipping (fast), and the whole method end to end (slow)."""
import json

import pytest

from rapidtomo.pipeline import Context, PipelineSettings, Stage, run_stages, stage_table


def counting_stage(name, inputs, outputs, settings, calls):
    def run(ctx):
        calls.append(name)
        for o in outputs:
            ctx.path(o).write_text(name)
    return Stage(name, inputs, outputs, settings, run)


def test_stages_skip_when_unchanged_and_rerun_downstream(tmp_path):
    calls = []
    ctx = Context(tmp_path, {}, PipelineSettings())

    def stages(a_setting):
        return [counting_stage("a", [], ["a.txt"], {"k": a_setting}, calls),
                counting_stage("b", ["a.txt"], ["b.txt"], {}, calls),
                counting_stage("c", [], ["c.txt"], {}, calls)]

    run_stages(ctx, stages(1), log=lambda *_: None)
    assert calls == ["a", "b", "c"]
    rows = run_stages(ctx, stages(1), log=lambda *_: None)
    assert calls == ["a", "b", "c"] and all(r["status"] == "skipped" for r in rows)
    run_stages(ctx, stages(2), log=lambda *_: None)  # a's settings changed: a and b rerun, c not
    assert calls[3:] == ["a", "b"]
    (tmp_path / "c.txt").unlink()  # a missing output reruns its stage
    run_stages(ctx, stages(2), log=lambda *_: None)
    assert calls[5:] == ["c"]
    assert "total" in stage_table(rows)


def test_a_failing_stage_keeps_earlier_state(tmp_path):
    calls = []
    ctx = Context(tmp_path, {}, PipelineSettings())

    def boom(ctx):
        raise RuntimeError("crash")
    with pytest.raises(RuntimeError):
        run_stages(ctx, [counting_stage("a", [], ["a.txt"], {}, calls), Stage("b", ["a.txt"], ["b.txt"], {}, boom)],
                   log=lambda *_: None)
    run_stages(ctx, [counting_stage("a", [], ["a.txt"], {}, calls), counting_stage("b", ["a.txt"], ["b.txt"], {}, calls)],
               log=lambda *_: None)
    assert calls == ["a", "b"]  # a resumed from the state, b ran


TINY_PRETRAIN = "[pretrain]\ncorpus_size = 2\nepochs = 2\nfine_tune_epochs = 1\n"


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_then_all_skipped(tmp_path, capsys, tiny_pipeline_toml):
    from rapidtomo.cli import main
    cfg = tmp_path / "tiny.toml"
    # pre-training needs the approximant-only network (corpora hold no SART)
    cfg.write_text(tiny_pipeline_toml.replace("[train]\n", '[train]\ninputs = ["approximant"]\n') + TINY_PRETRAIN)
    run = tmp_path / "run"
    assert main(["pipeline", str(run), "--config", str(cfg)]) == 0
    for name in ("phantom.h5", "scan_nominal.h5", "scan_reduced.h5", "golden.h5", "fbp.h5", "sart.h5",
                 "approximant.h5", "model.pt", "prediction.h5", "metrics.json", "report/index.html", "timings.json",
                 "pretrained.pt", "model_scratch.pt", "prediction_scratch.h5", "prediction_zero_shot.h5"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for ref in ("vs_golden", "vs_truth"):
        assert set(metrics[ref]) == {"rapid", "rapid_scratch", "rapid_zero_shot", "approximant", "fbp", "sart"}
        assert set(metrics[ref]["rapid"]) >= {"pcc", "ms_ssim", "ber", "dice"}
    # fine-tuning took [pretrain] fine_tune_epochs, training from scratch [train] epochs
    epochs = {m: len(json.loads((run / f"{m}.json").read_text())["history"]) for m in ("model", "model_scratch")}
    assert epochs == {"model": 1, "model_scratch": 2}
    # the approximant used the probe that the golden standard retrieved (as in the paper)
    from rapidtomo.io import read_volume
    assert read_volume(run / "approximant.h5").attrs["probe_source"] == f"{run / 'golden_probe.h5'}:/probe"
    capsys.readouterr()
    assert main(["pipeline", str(run), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "] running" not in out and out.count("unchanged, skipped") == 13  # pre-training on (auto)
    # another fine_tune_epochs reruns the fine-tuning and what follows it, not the pre-training
    cfg.write_text(cfg.read_text().replace("fine_tune_epochs = 1", "fine_tune_epochs = 2"))
    assert main(["pipeline", str(run), "--config", str(cfg)]) == 0
    ran = {line.split("]")[0].lstrip("[") for line in capsys.readouterr().out.splitlines() if "] running" in line}
    assert ran == {"train", "predict", "evaluate", "report"}
    # the experiments run on the finished run and land in its report
    assert main(["sweep", "angles", str(run), "--values", "3,5"]) == 0
    assert main(["ablation", str(run), "--variants", "A,E", "--epochs", "1", "--seeds", "1", "2"]) == 0
    for name in ("sweep_angles.json", "sweep_angles.csv", "sweep_angles.png", "ablation.json", "ablation.png"):
        assert (run / name).exists(), name
    records = json.loads((run / "sweep_angles.json").read_text())["records"]
    assert {r["value"] for r in records} == {3.0, 5.0} and {r["method"] for r in records} == {"rapid", "approximant"}
    assert main(["report", str(run)]) == 0


def test_config_typos_fail_at_once_with_one_line(tmp_path, capsys):
    from rapidtomo.cli import main
    for text, words in (("[train]\nepochz = 3\n", "[train] epochz"), ("[trian]\nepochs = 3\n", "unknown section [trian]")):
        cfg = tmp_path / "bad.toml"
        cfg.write_text(text)
        assert main(["pipeline", str(tmp_path / "run"), "--config", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists()


def test_the_pipeline_simulate_stage_writes_provenance_like_the_command(tmp_path):
    import h5py

    from rapidtomo.io import write_volume
    from rapidtomo.phantom import analytic_phantom
    from rapidtomo.pipeline import _simulate
    from rapidtomo.simulate import SimulateSettings
    phantom = write_volume(tmp_path / "ph.h5", analytic_phantom((8, 8, 24), (28e-9,) * 3, seed=1))
    s = SimulateSettings(shape=(8, 8, 24), n_nominal=3, n_reduced=2, photons=1e5, detector_size=16)
    ctx = Context(tmp_path / "run", {}, PipelineSettings(phantom=str(phantom)), {"simulate": s})
    _simulate(ctx)
    for scan in ("scan_nominal.h5", "scan_reduced.h5"):
        with h5py.File(tmp_path / "run" / scan) as f:
            attrs = dict(f["entry"].attrs)
        assert attrs["tool"] == "rapidtomo" and json.loads(attrs["settings"])["n_nominal"] == 3
        assert json.loads(attrs["sources"]) == [str(phantom)]
    info = json.loads((tmp_path / "run" / "simulate.json").read_text())
    assert info["stage"] == "simulate" and info["n_patterns"]["reduced"] > 0


def test_pipeline_inputs_are_checked_together_in_the_settings(tmp_path, capsys):
    from rapidtomo.cli import main
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[pipeline]\nscan_reduced = "{tmp_path / "r.h5"}"\n')
    assert main(["pipeline", str(tmp_path / "run"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: [pipeline]: scan_reduced needs scan_nominal" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_sart_input_makes_train_and_predict_depend_on_the_sart_baseline(tmp_path, monkeypatch):
    """[train] inputs with sart: the sart baseline is made even when [pipeline] baselines leave it
    out, train and predict take it (and rerun when it changes); pre-training makes its corpus with
    the SART baseline's settings and the golden standard's retrieved probe."""
    from rapidtomo import pipeline, pretrain, rundir
    from rapidtomo.pipeline import build_stages, pretrain_enabled, stage_settings
    config = {"train": {"inputs": ["approximant", "sart"]}, "pretrain": {"enabled": "auto"},
              "baseline": {"sweeps": 3}}
    pipe = PipelineSettings(baselines=["fbp"])
    ctx = Context(tmp_path, config, pipe, stage_settings(config, pipe))
    stages = {st.name: st for st in build_stages(ctx)}
    assert "sart" in stages and "fbp" in stages
    for name in ("train", "predict"):
        assert rundir.baseline("sart") in stages[name].inputs and rundir.baseline("fbp") not in stages[name].inputs
    assert rundir.baseline("sart") in stages["evaluate"].inputs
    assert pretrain_enabled(ctx)[0] is True  # auto: the default sample's corpus fits the budget
    assert rundir.GOLDEN_PROBE in stages["pretrain"].inputs
    calls = {}
    monkeypatch.setattr(pipeline, "run_train", lambda *a, **kw: calls.update(train=kw) or {"history": []})
    monkeypatch.setattr(pipeline, "run_predict", lambda *a, **kw: calls.setdefault("predict", (a, kw)))
    monkeypatch.setattr(pretrain, "pipeline_pretrain", lambda *a: calls.setdefault("pretrain", a) and {})
    stages["train"].run(ctx)
    stages["predict"].run(ctx)
    stages["pretrain"].run(ctx)
    assert calls["train"]["baselines"] == {"sart": tmp_path / "sart.h5"}
    assert calls["predict"][1]["baselines"] == {"sart": tmp_path / "sart.h5"}
    assert calls["predict"][0][1] == tmp_path / rundir.APPROXIMANT
    probe, retrieval, fine = calls["pretrain"][-3:]
    assert probe == tmp_path / rundir.GOLDEN_PROBE and retrieval is ctx.settings["golden"]
    assert list(fine) == ["sart"] and fine["sart"].method == "sart" and fine["sart"].sweeps == 3


def test_the_pretrain_stage_is_keyed_on_the_train_settings_it_reads(tmp_path):
    """[train] epochs (and the fine-tuning epochs) change the train stage's key but not the
    pretrain stage's, so they do not rerun the corpus training; the network's settings change both."""
    from rapidtomo.pipeline import build_stages, stage_settings

    def keys(config):
        config = {"pretrain": {"enabled": "on"}, **config}
        pipe = PipelineSettings()
        stages = {st.name: st for st in build_stages(Context(tmp_path, config, pipe, stage_settings(config, pipe)))}
        return stages["pretrain"].settings, stages["train"].settings

    pre, train = keys({})
    pre_epochs, train_epochs = keys({"train": {"epochs": 7}})
    pre_fine, train_fine = keys({"pretrain": {"enabled": "on", "fine_tune_epochs": 3}})
    pre_net, train_net = keys({"train": {"preset": "paper"}})
    assert pre_epochs == pre and train_epochs != train
    assert pre_fine == pre and train_fine != train
    assert pre_net != pre and train_net != train


def test_the_approximant_takes_the_golden_stages_retrieved_probe(tmp_path, monkeypatch):
    """The golden stage writes golden_probe.h5 and the approximant stage depends on it and reads
    it; with a golden standard made elsewhere the reduced scan's /entry/probe is used, and logged."""
    from rapidtomo import pipeline, rundir
    calls = {}

    def approximant(scan, out, settings, probe_path=None, shifts_path=None):
        calls["approximant"] = probe_path
        return {"loss_history": [], "probe_source": f"{probe_path}:/probe"}
    monkeypatch.setattr(pipeline, "run_two_step", lambda *a, **kw: calls.setdefault("golden", kw))
    monkeypatch.setattr(pipeline, "run_approximant", approximant)
    from rapidtomo.pretrain import PretrainSettings
    off = PretrainSettings(enabled="off")
    from rapidtomo.train import TrainSettings
    ctx = Context(tmp_path, {}, PipelineSettings(), {"golden": None, "approximant": None, "pretrain": off,
                                                     "train": TrainSettings()})
    stages = {st.name: st for st in pipeline.build_stages(ctx)}
    assert rundir.GOLDEN_PROBE in stages["golden"].outputs and rundir.GOLDEN_PROBE in stages["approximant"].inputs
    stages["golden"].run(ctx)
    stages["approximant"].run(ctx)
    assert calls["golden"]["probe_path"] == calls["approximant"] == tmp_path / rundir.GOLDEN_PROBE

    golden = tmp_path / "mine.h5"
    golden.write_text("")
    logged = []
    calls.clear()
    ctx = Context(tmp_path, {}, PipelineSettings(golden=str(golden)), {"approximant": None, "pretrain": off,
                                                                       "train": TrainSettings()}, logged.append)
    stages = {st.name: st for st in pipeline.build_stages(ctx)}
    assert "golden" not in stages and rundir.GOLDEN_PROBE not in stages["approximant"].inputs
    stages["approximant"].run(ctx)
    assert calls["approximant"] is None
    assert len(logged) == 1 and f"golden standard {golden} was made elsewhere" in logged[0]
    assert f"reduced scan's /entry/probe ({tmp_path / rundir.SCAN_REDUCED})" in logged[0]


def test_the_saved_settings_hold_the_validated_pipeline_section(tmp_path, monkeypatch):
    """pipeline_settings.json (read back by sweeps and ablations) has the run's seed from --seed,
    not the config file's raw [pipeline] section, and every default filled in."""
    from rapidtomo import pipeline
    monkeypatch.setattr(pipeline, "run_stages", lambda ctx, stages, force=False, log=print: [])
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pipeline]\nseed = 1\n[train]\nepochs = 2\n")
    pipeline.run_pipeline(tmp_path / "run", cfg, seed=7)
    saved = json.loads((tmp_path / "run" / "pipeline_settings.json").read_text())
    assert saved["pipeline"]["seed"] == 7 and saved["pipeline"]["baselines"] == ["fbp", "sart"]
    assert saved["train"] == {"epochs": 2}

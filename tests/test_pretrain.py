"""Pre-training (issue #14): the corpus (geometry, seeds, cache, resume, manifest), the model's
geometry record, train --init and zero-shot predict refusing another geometry, and the corpus
never holding the sample under test."""
import json
import os

import h5py
import numpy as np
import pytest
import torch

from rapidtomo.cli import main
from rapidtomo.errors import UserError
from rapidtomo.io import Volume, read_scan, write_volume
from rapidtomo.pretrain import (MANIFEST, PretrainSettings, array_sha256, build_corpus, builtin_model, check_disjoint,
                                corpus_pairs, corpus_seeds, geometry_from_scan, geometry_from_simulate, read_sample,
                                run_pretrain, sample_path, sample_plan)
from rapidtomo.recon import ApproximantSettings
from rapidtomo.simulate import SimulateSettings
from rapidtomo.train import TrainSettings
from rapidtomo.validity import differences, geometry_from_attrs

SIM = dict(shape=(8, 16, 32), detector_size=16, n_reduced=2, n_nominal=2, photons=1e5, device="cpu")
APPROX = ApproximantSettings(iterations=1, n_slabs=2, device="cpu")
NET = dict(widths=[2, 4], rates=[1, 2], z_rates=[2, 3], patch=8, batch_size=2, device="cpu")
TRAIN = TrainSettings(epochs=1, **NET)
SETTINGS = PretrainSettings(corpus_size=2, workers=2, epochs=1, layout_fraction=0.5, seed=0)
TEST_SEED = 0  # the pipeline's [simulate] seed: the sample under test


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 2-sample corpus (one synthetic IC, one sky130 block if gdstk is here) and its model."""
    d = tmp_path_factory.mktemp("corpus")
    geometry = geometry_from_simulate(SimulateSettings(**SIM), APPROX)
    summary = run_pretrain(d, d / "pre.pt", geometry, SETTINGS, TRAIN, {TEST_SEED}, {"simulate_seed": TEST_SEED})
    return d, geometry, summary


def test_corpus_seeds_skip_the_sample_under_test():
    assert corpus_seeds(PretrainSettings(corpus_size=3, seed=0), {0, 2}) == [1, 3, 4]
    plan = sample_plan(PretrainSettings(corpus_size=4, seed=5), {5})
    assert [p["seed"] for p in plan] == [6, 7, 8, 9]
    # the statistics vary with the seed and are repeatable
    assert plan[0]["params"] != plan[1]["params"]
    assert sample_plan(PretrainSettings(corpus_size=4, seed=5), {5}) == plan


def test_corpus_files_manifest_and_geometry(corpus):
    d, geometry, summary = corpus
    m = json.loads((d / MANIFEST).read_text())
    seeds = [s["seed"] for s in m["samples"]]
    assert TEST_SEED not in seeds and m["excluded_seeds"] == [TEST_SEED] and m["exclude"] == {"simulate_seed": 0}
    assert len(set(seeds)) == 2 and summary["samples"] == 2
    for s in m["samples"]:
        v, t, rec = read_sample(sample_path(d, s["index"]))
        a = v["approximant"]
        assert t.shape == (8, 16, 32) and a.shape == (8, 8, 16) and set(v) == {"approximant"}
        assert rec["truth_sha256"] == array_sha256(t.data) and set(rec["seconds"]) == {"phantom", "simulate",
                                                                                       "probe", "approximant"}
        assert set(rec["cpu_step_seconds"]) == set(rec["seconds"]) and rec["cpu_seconds"] > 0
        # every sample's approximant is in the geometry the corpus is valid for
        assert differences(m["geometry"], geometry_from_attrs(a.attrs)) == []
    g = m["geometry"]
    assert (g["n_angles"], g["detector_size"], g["n_slabs"], g["volume_shape"]) == (2, 16, 2, [8, 16, 32])
    assert g["approximant_hash"] and m["source"]["simulate"]["shape"] == [8, 16, 32]


def first_sample_of(corpus_dir, work):
    """A copy of ``corpus_dir``'s first sample and manifest in the new folder ``work``, as a killed run leaves it."""
    work.mkdir()
    for name in ("sample_0000.h5", MANIFEST):
        (work / name).write_bytes((corpus_dir / name).read_bytes())
    return work


def test_corpus_resumes_after_a_kill(corpus, tmp_path):
    d, geometry, _ = corpus
    work = first_sample_of(d, tmp_path / "c")
    (work / ".sample_0001.h5.123.tmp").write_bytes(b"half a file")  # what a kill leaves
    kept = os.stat(work / "sample_0000.h5").st_mtime_ns
    m = build_corpus(work, geometry, SETTINGS.model_copy(update={"workers": 1}), {TEST_SEED})
    assert os.stat(work / "sample_0000.h5").st_mtime_ns == kept  # not remade
    assert (work / "sample_0001.h5").is_file() and len(m["samples"]) == 2
    # the remade sample is the same sample (seeded)
    _, t1, _ = read_sample(work / "sample_0001.h5")
    _, t0, _ = read_sample(d / "sample_0001.h5")
    assert np.array_equal(t1.data, t0.data)


def test_corpus_of_another_geometry_is_refused(corpus):
    d, geometry, _ = corpus
    other = geometry_from_simulate(SimulateSettings(**{**SIM, "n_reduced": 3}), APPROX)
    with pytest.raises(UserError, match="other settings or another geometry"):
        build_corpus(d, other, SETTINGS, {TEST_SEED})


def test_corpus_never_holds_the_sample_under_test(corpus):
    from rapidtomo.simulate import default_phantom
    d, _, _ = corpus
    m = json.loads((d / MANIFEST).read_text())
    test_sample = default_phantom(SimulateSettings(**SIM, seed=TEST_SEED)).data
    check_disjoint(m, test_sample, "phantom.h5")  # passes
    _, truth, _ = read_sample(sample_path(d, 0))
    with pytest.raises(UserError, match="holds this very sample"):
        check_disjoint(m, truth.data, "phantom.h5")


def test_corpus_pairs_keep_samples_apart():
    rng = np.random.default_rng(0)
    samples = [({"approximant": Volume(rng.random((4, 8, 16)), (1, 1, 1))}, Volume(rng.random((4, 16, 32)), (1, 1, 1)))
               for _ in range(3)]
    data, _ = corpus_pairs(samples, patch=8, overlap=0.5, val_samples=1)
    assert data.coarse.shape == (1, 4, 24, 16) and data.fine.shape == (0, 4, 48, 32) and data.target.shape == (4, 48, 32)
    assert set(data.corners[:, 0] // 8) == {0, 1} and set(data.val_corners[:, 0] // 8) == {2}
    assert np.all(data.corners[:, 0] % 8 + 8 <= 8)  # no patch crosses a sample
    for k in range(3):  # each approximant normalised by itself
        block = data.coarse[0, :, 8 * k:8 * (k + 1)]
        assert abs(float(block.mean())) < 1e-5 and abs(float(block.std()) - 1) < 1e-3


def test_model_records_geometry_and_corpus(corpus):
    d, _, _ = corpus
    obj = torch.load(d / "pre.pt", map_location="cpu", weights_only=True)
    training = json.loads(obj["training"])
    m = json.loads((d / MANIFEST).read_text())
    assert training["geometry"] == m["geometry"]
    assert training["pretrain"]["corpus_key"] == m["key"]
    assert [s["seed"] for s in training["pretrain"]["samples"]] == [s["seed"] for s in m["samples"]]
    side = json.loads((d / "pre.json").read_text())
    assert side["stage"] == "pretrain" and side["samples"] == 2 and side["seconds_per_sample"] > 0


def _approximant_file(d, tmp_path, geometry_change=None):
    v, t, _ = read_sample(sample_path(d, 0))
    a = v["approximant"]
    if geometry_change:
        a.attrs["geometry"] = json.dumps({**geometry_from_attrs(a.attrs), **geometry_change})
    write_volume(tmp_path / "approximant.h5", a)
    write_volume(tmp_path / "golden.h5", t)
    return tmp_path / "approximant.h5", tmp_path / "golden.h5"


def test_zero_shot_predict_and_refusal(corpus, tmp_path, capsys):
    d, _, _ = corpus
    approx, _ = _approximant_file(d, tmp_path)
    assert main(["predict", str(d / "pre.pt"), str(approx), "-o", str(tmp_path / "p.h5"), "--device", "cpu"]) == 0
    approx, _ = _approximant_file(d, tmp_path, {"n_angles": 5, "energy_kev": 10.0})
    assert main(["predict", str(d / "pre.pt"), str(approx), "-o", str(tmp_path / "q.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "energy_kev 8.8 vs 10" in err and "n_angles 2 vs 5" in err
    assert not (tmp_path / "q.h5").exists()


def test_train_init_fine_tunes_and_refuses_misfits(corpus, tmp_path, capsys):
    from rapidtomo.nn import load_model
    from rapidtomo.stages import run_train
    d, _, _ = corpus
    approx, golden = _approximant_file(d, tmp_path)
    # a learning rate of ~0: the fine-tuned weights are the pre-trained ones, a scratch run's are not
    lr0 = dict(lr_start=1e-12, lr_end=0.0, train_fraction=0.8, val_fraction=0)
    r = run_train(approx, golden, tmp_path / "ft.pt", TrainSettings(epochs=1, init=str(d / "pre.pt"), **lr0, **NET))
    assert any("initialised from the pre-trained model" in n for n in r["notes"])
    run_train(approx, golden, tmp_path / "sc.pt", TrainSettings(epochs=1, **lr0, **NET))
    ft = load_model(tmp_path / "ft.pt")
    assert ft.training["init"] == str(d / "pre.pt") and ft.training["geometry"]["n_angles"] == 2
    pre = dict(load_model(d / "pre.pt").network.named_parameters())
    for path, same in (("ft.pt", True), ("sc.pt", False)):
        got = dict(load_model(tmp_path / path).network.named_parameters())
        gap = max(float((got[n] - p).detach().abs().max()) for n, p in pre.items())
        assert (gap < 1e-6) == same, (path, gap)
    # another architecture: one line, exit 2
    args = ["train", "--approximant", str(approx), "--target", str(golden), "-o", str(tmp_path / "x.pt"),
            "--init", str(d / "pre.pt"), "--patch", "8", "--widths", "2", "8", "--rates", "1", "2", "--z-rates", "2",
            "3", "--epochs", "1", "--train-fraction", "0.8", "--val-fraction", "0", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pre-trained network differs" in err and "widths" in err
    # another geometry: one line, exit 2
    approx, golden = _approximant_file(d, tmp_path, {"theta_max_deg": 90.0})
    args[args.index("8", args.index("--widths"))] = "4"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "theta_max_deg 140.8 vs 90" in err


def test_geometry_from_a_reduced_scan_file(tmp_path):
    from rapidtomo.stages import run_simulate
    run_simulate(SimulateSettings(**SIM, model="fast"), tmp_path)
    scan = read_scan(tmp_path / "scan_reduced.h5")
    g = geometry_from_scan(scan, APPROX, {"scan": "s"}, sample_yx=(16, 16))
    assert g.volume_shape == (8, 16, 16) and g.voxel_size_m == scan.voxel_size_m
    # an experiment does not know the true probe: the samples get the scan's probe or the one given
    assert np.array_equal(g.probe, scan.probe) and np.array_equal(g.guess, scan.probe)
    assert not np.array_equal(g.probe, scan.true_probe)
    retrieved = scan.probe * 0.5
    assert np.array_equal(geometry_from_scan(scan, APPROX, {}, (16, 16), retrieved).probe, retrieved)
    assert g.simulate.detector_distance_m == scan.detector_distance_m and g.simulate.model == "fast"
    assert g.scan_geometry["n_angles"] == 2 and g.simulate.photons == 1e5
    with pytest.raises(UserError, match="even"):
        geometry_from_scan(scan, APPROX, {}, sample_yx=(15, 16))


def test_approximant_files_carry_their_geometry(tmp_path):
    from rapidtomo.stages import run_approximant, run_simulate
    run_simulate(SimulateSettings(**SIM, model="fast"), tmp_path)
    run_approximant(tmp_path / "scan_reduced.h5", tmp_path / "a.h5", APPROX)
    with h5py.File(tmp_path / "a.h5") as f:
        g = json.loads(f["volume"].attrs["geometry"])
    assert g["n_angles"] == 2 and g["approximant"]["iterations"] == 1 and "device" not in g["approximant"]


def test_geometry_differences_name_each_field():
    base = {"energy_kev": 8.8, "voxel_size_m": [2.8e-8] * 3, "approximant_hash": "a", "volume_shape": [8, 16, 32]}
    assert differences(base, {**base, "volume_shape": [8, 64, 64], "energy_kev": 8.8 * (1 + 1e-6)}) == []
    diff = differences(base, {**base, "voxel_size_m": [2.8e-8, 1e-8, 1e-8], "approximant_hash": "b"})
    assert [d.split()[0] for d in diff] == ["voxel_size_m", "approximant_hash"]


def test_pretrain_command_end_to_end(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[simulate]\nshape = [8, 16, 32]\ndetector_size = 16\nn_reduced = 2\nphotons = 1e5\n"
                   "model = \"fast\"\n[approximant]\niterations = 1\nn_slabs = 2\n"
                   "[train]\nwidths = [2, 4]\nrates = [1, 2]\nz_rates = [2, 3]\npatch = 8\n")
    args = ["pretrain", "--config", str(cfg), "--corpus", str(tmp_path / "c"), "-o", str(tmp_path / "m.pt"),
            "--corpus-size", "1", "--epochs", "1", "--workers", "1", "--layout-fraction", "0", "--exclude-seed", "1000"]
    assert main(args) == 0
    m = json.loads((tmp_path / "c" / MANIFEST).read_text())
    assert [s["seed"] for s in m["samples"]] == [1001] and m["simulate"]["model"] == "fast"
    assert "wrote" in capsys.readouterr().out
    # --probe without --scan: one line, exit 2, nothing made
    assert main([*args, "--probe", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "--probe needs --scan" in err and len(err.strip().splitlines()) == 1


def _ctx(tmp_path, pretrain: dict):
    from rapidtomo.pipeline import Context, load_pipeline_config, stage_settings
    config = {"simulate": {"shape": [8, 16, 32], "detector_size": 16, "n_reduced": 2, "n_nominal": 2},
              "approximant": {"iterations": 1, "n_slabs": 2}, "pretrain": pretrain,
              "train": {"inputs": ["approximant"]}}
    _, pipe = load_pipeline_config(None)
    return Context(tmp_path, config, pipe, stage_settings(config, pipe))


def test_pipeline_pretrain_switch_and_stages(tmp_path):
    from rapidtomo import rundir
    from rapidtomo.pipeline import build_stages, pretrain_enabled
    assert pretrain_enabled(_ctx(tmp_path, {"enabled": "off"}))[0] is False
    assert pretrain_enabled(_ctx(tmp_path, {"enabled": "on"}))[0] is True
    assert pretrain_enabled(_ctx(tmp_path, {}))[0] is True  # auto: a tiny corpus fits the budget
    on, why = pretrain_enabled(_ctx(tmp_path, {"budget_s": 1e-3}))
    assert on is False and "budget" in why
    assert pretrain_enabled(_ctx(tmp_path, {"budget_s": 1e-3, "model": "m.pt"}))[0] is True
    names = [s.name for s in build_stages(_ctx(tmp_path, {"enabled": "off"}))]
    assert "pretrain" not in names and "zero_shot" not in names
    stages = {s.name: s for s in build_stages(_ctx(tmp_path, {"enabled": "on"}))}
    assert rundir.PRETRAINED in stages["train"].inputs and rundir.PRETRAINED not in stages["train_scratch"].inputs
    assert {rundir.PREDICTION, rundir.PREDICTION_SCRATCH, rundir.PREDICTION_ZERO_SHOT} <= set(stages["evaluate"].inputs)
    assert list(stages).index("pretrain") > list(stages).index("approximant")


def test_pipeline_stage_takes_a_given_model_only_for_its_geometry(corpus, tmp_path):
    from rapidtomo.pretrain import pipeline_pretrain
    from rapidtomo.stages import run_simulate
    d, _, _ = corpus
    for n_reduced, ok in ((2, True), (3, False)):
        run_simulate(SimulateSettings(**{**SIM, "n_reduced": n_reduced}, model="fast"), tmp_path)
        settings = PretrainSettings(model=str(d / "pre.pt"))
        out = tmp_path / f"pre{n_reduced}.pt"
        if ok:
            pipeline_pretrain(tmp_path / "scan_reduced.h5", out, tmp_path / "c", settings, APPROX, TRAIN, 0)
            assert out.read_bytes() == (d / "pre.pt").read_bytes()
        else:
            with pytest.raises(UserError, match="n_angles 2 vs 3"):
                pipeline_pretrain(tmp_path / "scan_reduced.h5", out, tmp_path / "c", settings, APPROX, TRAIN, 0)
            assert not out.exists()


def test_stale_samples_are_remade_and_a_stale_corpus_replaced_only_by_the_pipeline(corpus, tmp_path):
    d, geometry, _ = corpus
    work = first_sample_of(d, tmp_path / "c")
    # other seeds, same geometry: the sample on disk is not the planned one and is remade
    one = SETTINGS.model_copy(update={"corpus_size": 1, "workers": 1, "layout_fraction": 0.0, "seed": 50})
    m = build_corpus(work, geometry, one, {TEST_SEED})
    assert [s["seed"] for s in m["samples"]] == [50] and read_sample(work / "sample_0000.h5")[2]["seed"] == 50
    # another geometry: refused, unless the folder is the pipeline's own
    other = geometry_from_simulate(SimulateSettings(**{**SIM, "photons": 1e4}, model="fast"), APPROX)
    with pytest.raises(UserError, match="another corpus folder"):
        build_corpus(work, other, one, {TEST_SEED})
    m = build_corpus(work, other, one, {TEST_SEED}, replace_stale=True)
    assert m["simulate"]["model"] == "fast" and [p.name for p in work.glob("sample_*")] == ["sample_0000.h5"]


def test_corpus_pairs_take_full_resolution_inputs():
    rng = np.random.default_rng(1)
    samples = [({"approximant": Volume(rng.random((4, 8, 16)), (1, 1, 1)),
                 "sart": Volume(3 + 2 * rng.random((6, 16, 32)), (1, 1, 1))}, Volume(rng.random((6, 16, 32)), (1, 1, 1)))
               for _ in range(2)]
    data, notes = corpus_pairs(samples, patch=8, overlap=0.5, val_samples=1, inputs=("approximant", "sart"))
    assert data.coarse.shape == (1, 6, 16, 16) and data.fine.shape == (1, 6, 32, 32) and data.target.shape == (6, 32, 32)
    for k in range(2):  # each sample's SART normalised by itself, on the truth's rows of that sample
        block = data.fine[0, :, 16 * k:16 * (k + 1)]
        assert abs(float(block.mean())) < 1e-5 and abs(float(block.std()) - 1) < 1e-3
    assert data.norm["sart_mean"] == pytest.approx(4, abs=0.1) and "inputs ['approximant', 'sart']" in notes[0]
    (coarse, fine), target = data.batch([0])
    assert coarse.shape == (1, 1, 6, 8, 8) and fine.shape == (1, 1, 6, 16, 16) and target.shape == (1, 1, 6, 16, 16)
    # a corpus without the SART that the network takes: one line
    with pytest.raises(UserError, match="hold no sart"):
        corpus_pairs([({"approximant": v["approximant"]}, t) for v, t in samples], 8, 0.5, 1, ("approximant", "sart"))


def test_corpus_with_the_sart_input_pretrains_a_network_that_takes_it(tmp_path, capsys):
    from rapidtomo.pretrain import check_corpus_inputs, pipeline_pretrain
    from rapidtomo.recon import TwoStepSettings
    from rapidtomo.stages import run_simulate
    quick = TwoStepSettings(epochs=2, sweeps=2, probe_epochs=2, probe_angles=1)
    geometry = geometry_from_simulate(SimulateSettings(**SIM, model="fast"), APPROX, None, quick,
                                      {"sart": quick.model_copy(update={"method": "sart"})})
    train = TrainSettings(epochs=1, inputs=["approximant", "sart"], **NET)
    one = SETTINGS.model_copy(update={"corpus_size": 1, "workers": 1, "layout_fraction": 0.0})
    run_pretrain(tmp_path / "c", tmp_path / "m.pt", geometry, one, train, {TEST_SEED})
    v, t, rec = read_sample(sample_path(tmp_path / "c", 0))
    assert set(v) == {"approximant", "sart"} and v["sart"].shape == t.shape and "sart" in rec["seconds"]
    manifest = json.loads((tmp_path / "c" / MANIFEST).read_text())
    assert manifest["fine"]["sart"]["method"] == "sart" and manifest["probe_retrieval"]["probe_angles"] == 1
    from rapidtomo.nn import load_model
    assert load_model(tmp_path / "m.pt").settings.inputs == ["approximant", "sart"]
    # zero-shot prediction with both inputs
    write_volume(tmp_path / "a.h5", v["approximant"])
    write_volume(tmp_path / "s.h5", v["sart"])
    assert main(["predict", str(tmp_path / "m.pt"), str(tmp_path / "a.h5"), "--sart", str(tmp_path / "s.h5"),
                 "-o", str(tmp_path / "p.h5"), "--device", "cpu"]) == 0
    # the approximant-only network cannot use this corpus's model, nor a SART network an approximant-only corpus
    with pytest.raises(UserError, match="holds no fbp"):
        check_corpus_inputs(manifest, TrainSettings(inputs=["approximant", "fbp"]), "manifest.json")
    run_simulate(SimulateSettings(**SIM, model="fast"), tmp_path / "run")
    with pytest.raises(UserError, match=r"inputs \['approximant', 'sart'\], but \[train\] inputs = \['approximant'\]"):
        pipeline_pretrain(tmp_path / "run" / "scan_reduced.h5", tmp_path / "x.pt", tmp_path / "c2",
                          PretrainSettings(model=str(tmp_path / "m.pt")), APPROX, TRAIN, 0)
    assert not (tmp_path / "x.pt").exists()


def test_builtin_models_resolve_and_an_unknown_one_is_named():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="no built-in model 'nope' \\(built in: .*demo"):
        PretrainSettings(model="builtin:nope")
    assert PretrainSettings(model="builtin:demo").model.endswith("rapidtomo/models/demo.pt")


def test_the_shipped_demo_model_fits_the_demo_geometry_and_records_how_it_was_made():
    """The model that `make demo` fine-tunes: made for the demo preset's reduced acquisition
    (every checked geometry field), for the pipeline's network (approximant + SART), from a
    corpus that excludes the demo's seeds, with its provenance beside it."""
    from rapidtomo.config import preset
    from rapidtomo.nn import load_model
    from rapidtomo.pipeline import PIPELINE_INPUTS
    cfg = preset("demo")
    m = load_model(PretrainSettings(**cfg["pretrain"]).model)
    plan = geometry_from_simulate(SimulateSettings(**cfg["simulate"]), ApproximantSettings(**cfg["approximant"]))
    assert differences(m.training["geometry"], plan.scan_geometry) == []
    assert m.settings.inputs == PIPELINE_INPUTS
    seeds = [s["seed"] for s in m.training["pretrain"]["samples"]]
    assert not {0, 1, 2, 3} & set(seeds) and len(seeds) == len(set(seeds))
    model_path = PretrainSettings(**cfg["pretrain"]).model
    side = json.loads(open(model_path[: -len(".pt")] + ".json").read())
    assert side["command"].startswith("rapidtomo pretrain") and side["samples"] == len(seeds)
    assert side["tool_version"] and side["timings_s"]["corpus"] > 0


def test_the_shipped_layout_model_fits_the_demo_blocks_geometry_and_never_saw_it():
    """The model that `rapidtomo demo --sample layout` fine-tunes: made for the demo preset's
    acquisition of the sky130 block (its dz is the stack's height over Z), for the pipeline's
    network, from a corpus without the demo's seeds whose blocks are other placements."""
    pytest.importorskip("gdstk")
    from rapidtomo.config import preset
    from rapidtomo.nn import load_model
    from rapidtomo.phantom.layout import layout_block_phantom
    from rapidtomo.pipeline import PIPELINE_INPUTS
    cfg = preset("demo")
    sim = SimulateSettings(**cfg["simulate"])
    block = layout_block_phantom(tuple(sim.shape), sim.voxel_size_m, sim.energy_kev, seed=0)
    m = load_model(builtin_model("layout"))
    plan = geometry_from_simulate(sim, ApproximantSettings(**cfg["approximant"])).scan_geometry
    plan.update(voxel_size_m=list(block.voxel_size_m), depth_m=block.shape[0] * block.voxel_size_m[0])
    assert differences(m.training["geometry"], plan) == []
    assert differences(m.training["geometry"], load_model(builtin_model("demo")).training["geometry"]) != []
    assert m.settings.inputs == PIPELINE_INPUTS
    samples = m.training["pretrain"]["samples"]
    assert not {0, 1, 2, 3} & {s["seed"] for s in samples}
    assert "layout_block" in {s["kind"] for s in samples}
    assert array_sha256(block.data) not in {s["truth_sha256"] for s in samples}
    side = json.loads(builtin_model("layout").with_suffix(".json").read_text())
    assert side["command"].startswith("rapidtomo pretrain") and side["samples"] == len(samples)
    assert side["timings_s"]["corpus"] > 60  # the corpus was made by that command, not found on disk


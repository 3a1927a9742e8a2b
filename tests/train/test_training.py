import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rapidtomo.cli import main
from rapidtomo.io import Volume, read_volume, write_volume
from rapidtomo.nn import NetworkSettings, build_network, load_model
from rapidtomo.train import TrainSettings, checkpoint_path, log_paths, npcc, prepare_pairs, train


def test_one_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = build_network(NetworkSettings(widths=[4, 8], rates=[1, 2], z_rates=[2, 3]))
    x = torch.randn(2, 1, 4, 8, 8)
    y = torch.nn.functional.interpolate(x, scale_factor=(1, 2, 2)) ** 2
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = npcc(net(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = npcc(net(x), y)
    assert float(after) < float(before.detach())


def _state_equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_resume_continues_exactly_from_the_checkpoint(tmp_path, make_pair, tiny):
    a, g = make_pair()
    s = TrainSettings(epochs=2, **tiny)
    full = train(a, g, s, tmp_path / "full.pt")

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(a, g, s, tmp_path / "cut.pt", callback=stop_after_first)
    assert not (tmp_path / "cut.pt").exists() and checkpoint_path(tmp_path / "cut.pt").exists()
    resumed = train(a, g, s, tmp_path / "cut.pt", resume=True)
    assert any("resumed" in n for n in resumed["notes"])
    assert resumed["steps"] == full["steps"] > 0
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in full["history"]]
    assert _state_equal(resumed["network"].state_dict(), full["network"].state_dict())
    ck_full = torch.load(checkpoint_path(tmp_path / "full.pt"), weights_only=True)
    ck_cut = torch.load(checkpoint_path(tmp_path / "cut.pt"), weights_only=True)
    assert ck_full["step"] == ck_cut["step"]
    of, oc = ck_full["optimizer"], ck_cut["optimizer"]
    assert of["param_groups"] == oc["param_groups"]
    for k in of["state"]:
        assert all(torch.equal(of["state"][k][n], oc["state"][k][n]) for n in of["state"][k])
    # the run wrote its files; a changed setting refuses to resume
    csv_path, png_path = log_paths(tmp_path / "cut.pt")
    assert csv_path.read_text().count("\n") == 3 and png_path.stat().st_size > 0
    with pytest.raises(Exception, match="different settings"):
        train(a, g, s.model_copy(update={"seed": 5}), tmp_path / "cut.pt", resume=True)


def test_training_lowers_the_loss_and_writes_a_loadable_model(tmp_path, make_pair, tiny):
    a, g = make_pair()
    r = train(a, g, TrainSettings(epochs=4, lr_start=3e-3, lr_end=1e-3, **tiny), tmp_path / "m.pt")
    losses = [h["train_loss"] for h in r["history"]]
    assert losses[-1] < losses[0]
    m = load_model(tmp_path / "m.pt")
    assert m.patch == 8 and m.training["target_z"] == g.shape[0]
    assert m.normalisation["output_scale"] != 0


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    sys.path.insert(0, {tests!r})
    from conftest import make_pair
    from rapidtomo.train import TrainSettings, train
    torch.set_num_threads(1)
    a, g = make_pair()
    r = train(a, g, TrainSettings(epochs=2, **{tiny!r}), {out!r})
    rank = int(os.environ["RANK"])
    torch.save(r["network"].state_dict(), {out!r} + f".rank{{rank}}")
    print("world", r["world_size"], "steps", r["steps"])
""")


def test_two_process_torchrun_trains_with_identical_weights(tmp_path, tiny):
    script = tmp_path / "ddp.py"
    out = str(tmp_path / "m.pt")
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), tiny=tiny, out=out))
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAPIDTOMO_QUIET": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", str(script)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "world 2" in proc.stdout
    w0, w1 = (torch.load(f"{out}.rank{r}", weights_only=True) for r in (0, 1))
    assert _state_equal(w0, w1)
    fresh = build_network(TrainSettings(**tiny).network_settings()).state_dict()
    assert not _state_equal(w0, fresh)  # it did train
    assert load_model(out).network is not None


def test_cli_train_then_predict(tmp_path, make_pair, tiny):
    a, g = make_pair()
    write_volume(tmp_path / "a.h5", a)
    write_volume(tmp_path / "g.h5", g)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in tiny.items()))
    assert main(["train", "--approximant", str(tmp_path / "a.h5"), "--target", str(tmp_path / "g.h5"),
                 "-o", str(tmp_path / "m.pt"), "--epochs", "1", "--config", str(cfg)]) == 0
    info = json.loads((tmp_path / "m.json").read_text())
    assert info["stage"] == "train" and info["settings"]["epochs"] == 1 and "train" in info["timings_s"]
    assert main(["predict", str(tmp_path / "m.pt"), str(tmp_path / "a.h5"), "-o", str(tmp_path / "p.h5")]) == 0
    p = read_volume(tmp_path / "p.h5")
    assert p.shape == g.shape and p.voxel_size_m == pytest.approx(g.voxel_size_m)
    # bad input: exit 2, one line, existing output untouched
    before = (tmp_path / "m.pt").read_bytes()
    assert main(["train", "--approximant", str(tmp_path / "a.h5"), "--target", str(tmp_path / "a.h5"),
                 "-o", str(tmp_path / "m.pt"), "--config", str(cfg)]) == 2
    assert (tmp_path / "m.pt").read_bytes() == before
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    assert main(["predict", str(tmp_path / "bad.pt"), str(tmp_path / "a.h5"), "-o", str(tmp_path / "p.h5")]) == 2


def test_cli_train_then_predict_with_sart(tmp_path, make_pair, tiny, capsys):
    a, g = make_pair(xa=40)
    rng = np.random.default_rng(3)
    sart = Volume((g.data + 0.3 * rng.standard_normal(g.shape)).astype(np.float32), g.voxel_size_m)
    for name, v in (("a", a), ("g", g), ("s", sart)):
        write_volume(tmp_path / f"{name}.h5", v)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in tiny.items()))
    a_, g_, s_ = (str(tmp_path / f"{n}.h5") for n in "ags")
    base = ["train", "--approximant", a_, "--target", g_, "--epochs", "2", "--config", str(cfg)]
    assert main(base + ["--sart", s_, "--inputs", "approximant", "sart", "-o", str(tmp_path / "m.pt")]) == 0
    info = json.loads((tmp_path / "m.json").read_text())
    assert info["settings"]["inputs"] == ["approximant", "sart"] and s_ in info["sources"]
    assert set(info["normalisation"]) >= {"approximant_mean", "sart_mean", "sart_std", "output_scale"}
    assert main(["predict", str(tmp_path / "m.pt"), a_, "--sart", s_, "-o", str(tmp_path / "p.h5")]) == 0
    p = read_volume(tmp_path / "p.h5")
    assert p.shape == g.shape and json.loads(p.attrs["model_inputs"]) == ["approximant", "sart"]
    assert main(base + ["--sart", s_, "--inputs", "sart", "-o", str(tmp_path / "s.pt")]) == 0
    assert main(["predict", str(tmp_path / "s.pt"), "--sart", s_, "-o", str(tmp_path / "q.h5")]) == 0
    assert read_volume(tmp_path / "q.h5").shape == g.shape
    capsys.readouterr()
    # mismatches: one line, exit 2, nothing written
    for args, words in (
            (["predict", str(tmp_path / "m.pt"), a_, "-o", str(tmp_path / "x.h5")], "takes approximant + sart"),
            (["predict", str(tmp_path / "s.pt"), a_, "--sart", s_, "-o", str(tmp_path / "x.h5")], "takes sart"),
            (base + ["--inputs", "approximant", "sart", "-o", str(tmp_path / "x.pt")], "--sart FILE"),
            (base + ["--sart", s_, "-o", str(tmp_path / "x.pt")], "do not include sart"),
            (base + ["--sart", a_, "--inputs", "sart", "-o", str(tmp_path / "x.pt")], "must be (z, 32, 80)")):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.pt").exists()


def test_early_stopping_keeps_the_best_validation_epoch(tmp_path, make_pair, tiny):
    a, g = make_pair(xa=40)
    s = TrainSettings(epochs=30, patience=2, lr_start=1e-2, lr_end=1e-2, val_fraction=0.2, **tiny)
    r = train(a, g, s, tmp_path / "m.pt")
    vals = [h["val_loss"] for h in r["history"]]
    best = int(np.argmin(vals)) + 1
    assert r["best_epoch"] == best
    assert len(vals) < 30 and len(vals) == best + 2               # stopped `patience` epochs after the best
    # the returned (and saved) network is the best epoch's: its validation loss is the minimum
    data, _ = prepare_pairs(a, g, s.patch_size(), s.overlap, s.train_fraction, s.val_fraction)
    with torch.no_grad():
        x, y = data.batch(np.arange(len(data.val_corners)), val=True)
        x = x[0]  # the approximant alone (no full-resolution inputs)
        m = load_model(tmp_path / "m.pt")
        assert float(npcc(r["network"](x), y)) == pytest.approx(min(vals), abs=1e-5)
        assert float(npcc(m.network(x), y)) == pytest.approx(min(vals), abs=1e-5)
    assert m.training["best_epoch"] == best and m.training["n_val"] == len(data.val_corners)

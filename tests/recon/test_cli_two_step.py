"""``rapidtomo golden`` and ``rapidtomo baseline``: outputs, settings/timings, cache resume, errors."""
import json

import h5py
import numpy as np

from rapidtomo.cli import main
from rapidtomo.io import read_volume, write_scan
from rapidtomo.phantom import analytic_phantom
from rapidtomo.simulate import SimulateSettings, simulate


def scan_file(tmp_path):
    ph = analytic_phantom((8, 8, 24), (28e-9,) * 3, seed=1)
    s = SimulateSettings(shape=ph.shape, n_nominal=3, n_reduced=2, photons=1e5, detector_size=16)
    _, nom, red = simulate(s, ph)
    return write_scan(tmp_path / "nominal.h5", nom), write_scan(tmp_path / "reduced.h5", red)


def test_golden_and_baseline_write_volume_info_and_resume(tmp_path, capsys):
    nom, red = scan_file(tmp_path)
    out = tmp_path / "golden.h5"
    assert main(["golden", str(nom), "-o", str(out), "--epochs", "2"]) == 0
    vol = read_volume(out)
    assert vol.shape == (8, 8, 24) and vol.attrs["method"] == "sart"
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["settings"]["method"] == "sart" and info["settings"]["sweeps"] == 10
    assert {"ptychography", "tomography", "write"} <= set(info["timings_s"])
    cache = out.with_suffix(".cache.h5")
    with h5py.File(cache, "a") as f:
        assert len([k for k in f if k.startswith("angle_")]) == 3
    # the tomography method is not part of the cache key; cached angles are taken as they are
    assert main(["golden", str(nom), "-o", str(out), "--epochs", "2", "--method", "fbp"]) == 0
    first = read_volume(out).data
    with h5py.File(cache, "a") as f:
        f["angle_00001"][...] = 0.0
    assert main(["golden", str(nom), "-o", str(out), "--epochs", "2", "--method", "fbp"]) == 0
    assert not np.array_equal(read_volume(out).data, first)

    base = tmp_path / "fbp.h5"
    assert main(["baseline", str(red), "--method", "fbp", "-o", str(base), "--epochs", "2"]) == 0
    assert read_volume(base).attrs["method"] == "fbp" and read_volume(base).attrs["n_angles"] == 2
    assert json.loads(base.with_suffix(".json").read_text())["stage"] == "baseline"


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "bad.h5").write_text("nope")
    out = tmp_path / "g.h5"
    assert main(["golden", str(tmp_path / "bad.h5"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.h5" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    (tmp_path / "c.toml").write_text("[baseline]\nepochs = 0\n")
    assert main(["baseline", str(tmp_path / "bad.h5"), "--config", str(tmp_path / "c.toml"), "-o", str(out)]) == 2
    assert "epochs" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5", "c.toml"]


def test_the_golden_standards_probe_goes_to_the_approximant(tmp_path, capsys):
    """``rapidtomo golden`` writes the probe it retrieved (OUT's name + _probe.h5); ``rapidtomo
    approximant --probe`` takes it (or a scan file's /entry/probe) and records which it used."""
    from rapidtomo.recon.two_step import read_probe
    nom, red = scan_file(tmp_path)
    out = tmp_path / "golden.h5"
    assert main(["golden", str(nom), "-o", str(out), "--epochs", "2", "--probe-epochs", "2"]) == 0
    probe_file = tmp_path / "golden_probe.h5"
    retrieved = read_probe(probe_file)
    with h5py.File(nom) as f:
        guess = f["/entry/probe"][()]
        assert f["/entry/probe"].attrs.get("pixel_size_m") is None
    assert retrieved.shape == guess.shape and not np.allclose(retrieved, guess)  # refined from the guess
    with h5py.File(probe_file) as f:
        assert f["probe"].attrs["refined"] and f["probe"].attrs["pixel_size_m"] == 28e-9
    assert json.loads(out.with_suffix(".json").read_text())["probe_out"] == str(probe_file)
    assert main(["baseline", str(red), "-o", str(tmp_path / "fbp.h5"), "--epochs", "1"]) == 0
    assert not (tmp_path / "fbp_probe.h5").exists()  # only the golden standard's probe is kept

    a = tmp_path / "approximant.h5"
    assert main(["approximant", str(red), "-o", str(a), "--iterations", "1", "--probe", str(probe_file)]) == 0
    assert read_volume(a).attrs["probe_source"] == f"{probe_file}:/probe"
    info = json.loads(a.with_suffix(".json").read_text())
    assert info["probe_source"] == f"{probe_file}:/probe" and str(probe_file) in info["sources"]
    assert main(["approximant", str(red), "-o", str(a), "--iterations", "1", "--probe", str(nom)]) == 0
    assert read_volume(a).attrs["probe_source"] == f"{nom}:/entry/probe"
    assert main(["approximant", str(red), "-o", str(a), "--iterations", "1"]) == 0
    assert read_volume(a).attrs["probe_source"] == f"{red}:/entry/probe"

    # a probe that does not fit the scan is one line, and the approximant is left as it was
    before = a.stat().st_mtime_ns
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f["probe"] = np.ones((1, 8, 8), np.complex64)
    capsys.readouterr()
    for bad, words in ((tmp_path / "small.h5", "/probe has shape (1, 8, 8), but the scan's patterns are 16x16"),
                       (tmp_path / "none.h5", "probe file not found"), (out, "no /probe")):
        assert main(["approximant", str(red), "-o", str(a), "--probe", str(bad)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert a.stat().st_mtime_ns == before


def test_aligned_baseline_reports_shifts_and_the_approximant_takes_them(tmp_path, capsys):
    """``--align``: the shifts found go to the volume and its sidecar, with the error against the
    simulated ones, and a line on the terminal; ``rapidtomo approximant --shifts`` takes them (from
    either file) and refuses an alignment of other angles, one line, exit 2, nothing written."""
    ph = analytic_phantom((8, 8, 24), (28e-9,) * 3, seed=1)
    s = SimulateSettings(shape=ph.shape, n_nominal=4, n_reduced=5, photons=1e5, detector_size=16, drift_px=2.0,
                         axis_offset_px=1.0)
    _, nom, red = simulate(s, ph)
    nom_path, red_path = write_scan(tmp_path / "nominal.h5", nom), write_scan(tmp_path / "reduced.h5", red)
    base = tmp_path / "fbp.h5"
    assert main(["baseline", str(red_path), "--method", "fbp", "-o", str(base), "--epochs", "2", "--align",
                 "--align-iterations", "2"]) == 0
    assert "rotation axis" in capsys.readouterr().out
    rec = json.loads(base.with_suffix(".json").read_text())["alignment"]
    assert np.shape(rec["shift_m"]) == (5, 2) and rec["angles_deg"] == red.angles_deg.tolist()
    assert set(rec["error_rms_m"]) == {"y", "x", "rms"} and rec["pixel_m"] == 28e-9
    assert json.loads(read_volume(base).attrs["alignment"])["axis_offset_m"] == rec["axis_offset_m"]
    for shifts in (base, base.with_suffix(".json")):
        out = tmp_path / f"a_{shifts.suffix[1:]}.h5"
        assert main(["approximant", str(red_path), "-o", str(out), "--shifts", str(shifts)]) == 0
        assert read_volume(out).attrs["shifts_source"] == str(shifts)
    capsys.readouterr()
    bad = tmp_path / "other.h5"
    assert main(["approximant", str(nom_path), "-o", str(bad), "--shifts", str(base)]) == 2
    err = capsys.readouterr().err
    assert "angles_deg" in err and len(err.strip().splitlines()) == 1 and not bad.exists()


def test_shifts_move_the_approximants_probe_positions():
    import torch

    from rapidtomo.recon.approximant import ApproximantSettings, build_problem
    ph = analytic_phantom((8, 8, 24), (28e-9,) * 3, seed=1)
    _, _, red = simulate(SimulateSettings(shape=ph.shape, n_nominal=2, n_reduced=2, photons=0, detector_size=16,
                                          field_margin_px=4), ph)
    shift = np.array([[2.0, -4.0], [0.3, 6.5]]) * 28e-9
    plain = build_problem(red, ApproximantSettings(), torch.device("cpu")).top_left.numpy()
    moved = build_problem(red, ApproximantSettings(), torch.device("cpu"), sample_shift_m=shift).top_left.numpy()
    # the probe sat at position − shift relative to the sample (coarse pixels of 56 nm); the grid's growth
    # for the shifted positions is common to both angles
    moves = moved - plain
    np.testing.assert_allclose(moves, np.broadcast_to(moves[:, :1], moves.shape), atol=1e-9)
    np.testing.assert_allclose(moves[1, 0] - moves[0, 0], -(shift[1] - shift[0]) / 56e-9, atol=1e-9)

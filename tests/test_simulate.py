"""The simulate stage and its command line."""
import json

import numpy as np
import pytest

from rapidtomo.cli import main
from rapidtomo.io import Volume, read_scan, read_volume, write_scan, write_volume
from rapidtomo.simulate import SimulateSettings, simulate


def blocks(shape=(8, 16, 32), seed=0):
    rng = np.random.default_rng(seed)
    v = np.zeros(shape, np.float32)
    v[2:5, 3:9, rng.integers(0, 10):20] = 0.1
    return Volume(v, (28e-9,) * 3)


def tiny(**kw):
    return SimulateSettings(**{"shape": (8, 16, 32), "n_nominal": 4, "n_reduced": 2, "photons": 1e4, **kw})


def test_deterministic_under_seed_and_noise_statistics():
    a = simulate(tiny(), blocks())
    b = simulate(tiny(), blocks())
    np.testing.assert_array_equal(a[1].intensities, b[1].intensities)
    c = simulate(tiny(seed=5), blocks())
    assert not np.array_equal(a[1].intensities, c[1].intensities)
    # Poisson counts with the requested mean photons per pattern (the sample transmits almost all)
    counts = a[1].intensities.sum(axis=(-2, -1))
    assert np.all(a[1].intensities == np.round(a[1].intensities))
    assert counts.mean() == pytest.approx(1e4, rel=0.05)


def test_noiseless_scan_and_reduced_angles():
    ph, nom, red = simulate(tiny(photons=0), blocks())
    assert nom.intensities.shape[0] == 4 and red.intensities.shape[0] == 2
    np.testing.assert_allclose(red.angles_deg, [-70.4, 70.4])
    assert nom.volume_shape == (8, 16, 32) and nom.pixel_size_m == pytest.approx(28e-9, rel=1e-9)
    assert nom.intensities.min() >= 0 and np.any(nom.intensities != np.round(nom.intensities))


def test_cli_simulate_with_user_phantom(tmp_path, capsys):
    write_volume(tmp_path / "mine.h5", blocks())
    out = tmp_path / "run"
    code = main(["simulate", "--phantom", str(tmp_path / "mine.h5"), "--out", str(out), "--n-nominal", "3",
                 "--n-reduced", "2", "--photons", "0"])
    assert code == 0
    assert read_scan(out / "scan_nominal.h5").n_angles == 3 and read_scan(out / "scan_reduced.h5").n_angles == 2
    np.testing.assert_array_equal(read_volume(out / "phantom.h5").data, blocks().data)
    info = json.loads((out / "simulate.json").read_text())
    assert info["settings"]["n_nominal"] == 3 and "simulate" in info["timings_s"]


def test_cli_bad_inputs_exit_2_without_traceback(tmp_path, capsys):
    (tmp_path / "bad.h5").write_text("nope")
    assert main(["simulate", "--phantom", str(tmp_path / "bad.h5"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.h5" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    (tmp_path / "c.toml").write_text("[simulate]\nn_reduced = -3\n")
    assert main(["simulate", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "n_reduced" in capsys.readouterr().err
    (tmp_path / "d.yaml").write_text("simulate:\n  colour: blue\n")
    assert main(["simulate", "--config", str(tmp_path / "d.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "colour" in capsys.readouterr().err


def test_scan_holds_a_wrong_probe_guess_and_the_true_probe_apart(tmp_path):
    _, nom, _ = simulate(tiny(photons=0), blocks())
    assert nom.true_probe is not None and nom.true_probe.shape == nom.probe.shape
    power = lambda p: np.sum(np.abs(p) ** 2)  # noqa: E731
    assert power(nom.probe) == pytest.approx(power(nom.true_probe), rel=1e-5)  # the right total power
    overlap = abs(np.vdot(nom.probe[0], nom.true_probe[0])) / np.sqrt(power(nom.probe[0]) * power(nom.true_probe[0]))
    assert overlap < 0.95  # but not the probe that made the data
    # the patterns hold the true probe's photons: h·w·Σ|P|² per pattern for a nearly transparent sample
    h = nom.intensities.shape[-1]
    assert nom.intensities.sum((-2, -1)).mean() == pytest.approx(h * h * power(nom.true_probe), rel=0.02)
    from rapidtomo.io import write_scan
    write_scan(tmp_path / "s.h5", nom)
    back = read_scan(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.true_probe, nom.true_probe)
    rec = back.attrs["simulation"]
    assert rec["model"] == "fine" and rec["oversampling"] == 2 and rec["slab_change"] < 1e-3
    assert rec["slab_thickness_m"] <= 32 * 28e-9 and rec["engine"] in ("fftw", "torch")


def test_fast_model_is_the_reconstruction_operator_and_differs_from_the_fine_one():
    _, fine, _ = simulate(tiny(photons=0), blocks())
    _, fast, _ = simulate(tiny(photons=0, model="fast"), blocks())
    assert fast.attrs["simulation"]["model"] == "fast" and fast.attrs["simulation"]["n_slabs"] == 5
    rel = np.linalg.norm(fine.intensities - fast.intensities) / np.linalg.norm(fast.intensities)
    assert 1e-6 < rel < 0.05


def test_a_detector_distance_must_give_the_voxel_size():
    from rapidtomo.physics.geometry import object_pixel_size_m
    pixel = object_pixel_size_m(8.8, 1.92, 75e-6, 256)  # 14.089 nm
    s = SimulateSettings(detector_size=256, detector_distance_m=1.92, voxel_size_m=pixel * (1 + 5e-7))
    assert s.distance_m == 1.92
    with pytest.raises(ValueError, match=r"gives an object pixel .* = 1\.408911e-08 m, but voxel_size_m = 2\.8e-08"):
        SimulateSettings(detector_size=256, detector_distance_m=1.92)  # the default 28 nm voxel
    with pytest.raises(ValueError, match="set voxel_size_m = 1.408911e-08"):
        SimulateSettings(detector_size=256, detector_distance_m=1.92, voxel_size_m=14.0893e-9)  # 1.3e-5 off


def test_a_detector_distance_at_odds_with_the_voxel_is_one_line(tmp_path, capsys):
    assert main(["simulate", "--detector-distance-m", "1.92", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "[simulate]: detector_distance_m = 1.92 m gives an object pixel" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_position_errors_move_the_probe_and_the_file_keeps_the_nominal_positions():
    from rapidtomo.physics.geometry import beam_grid, wavelength_m
    from rapidtomo.physics.operator import scan_intensities
    kw = dict(model="fast", photons=0, n_reduced=1, detector_size=16, scan_step_px=4)
    exact = simulate(tiny(**kw), blocks())[1]
    moved = simulate(tiny(position_error_px=0.5, **kw), blocks())[1]
    np.testing.assert_array_equal(moved.positions_m, exact.positions_m)  # nominal, as a stage reads them
    assert exact.true_positions_m is None
    err = (moved.true_positions_m - moved.positions_m) / 28e-9
    assert 0.4 < np.sqrt(np.mean(err**2)) < 0.6 and np.abs(err - np.rint(err)).max() > 0.1  # sub-pixel
    # the patterns are those of the operator at the true positions, not at the nominal ones
    v = blocks()
    grid = beam_grid(v.shape, v.voxel_size_m, (16, 16), 5).covering(moved.true_positions_m, (16, 16))
    at = lambda p: scan_intensities(v.data, np.deg2rad(moved.angles_deg), grid, moved.true_probe,  # noqa: E731
                                    grid.top_left(p, (16, 16)), wavelength_m(8.8))
    true, nominal = at(moved.true_positions_m), at(moved.positions_m)
    assert np.linalg.norm(moved.intensities - true) < 1e-4 * np.linalg.norm(true)
    assert np.linalg.norm(moved.intensities - nominal) > 1e-2 * np.linalg.norm(true)


def test_position_error_statistics():
    from rapidtomo.physics.scanning import position_errors
    rng = np.random.default_rng(3)
    assert not position_errors((2, 50), 0, 0, rng).any()
    e = position_errors((4, 400), 0.5, 0, rng)
    assert abs(np.sqrt(np.mean(e**2)) - 0.5) < 0.03
    d = position_errors((4, 400), 0, 1.0, rng)
    np.testing.assert_allclose(np.sqrt(np.mean(d**2, axis=1)), 1.0)
    # slow: neighbours in the scan differ far less than the drift itself
    assert np.sqrt(np.mean(np.diff(d, axis=1) ** 2)) < 0.2
def test_drift_moves_the_sample_not_the_positions_and_is_recorded(tmp_path):
    ph = blocks()
    _, still, _ = simulate(tiny(photons=0, field_margin_px=4), ph)
    _, moved, red = simulate(tiny(photons=0, drift_px=1.5, axis_offset_px=1.0, field_margin_px=4), ph)
    np.testing.assert_array_equal(moved.positions_m, still.positions_m)  # the same field: 4 px of margin hold the drift
    shift = moved.sample_shift_m / ph.voxel_size_m[2]
    assert shift.shape == (moved.n_angles, 2) and red.sample_shift_m.shape == (red.n_angles, 2)
    assert np.abs(shift[:, 0]).max() == pytest.approx(1.5) and np.abs(shift[:, 1] - 1.0).max() == pytest.approx(1.5)
    assert not np.allclose(moved.intensities, still.intensities, rtol=1e-3)
    write_scan(tmp_path / "s.h5", moved)
    np.testing.assert_array_equal(read_scan(tmp_path / "s.h5").sample_shift_m, moved.sample_shift_m)
    assert "sample_shifts" in moved.attrs["simulation"] and still.sample_shift_m is None


def test_drift_needs_the_fine_model():
    with pytest.raises(ValueError, match="model = 'fine'"):
        SimulateSettings(model="fast", drift_px=1.0)


def test_streamed_simulation_equals_in_memory_and_a_killed_run_resumes_with_the_same_data(tmp_path, monkeypatch):
    from rapidtomo.io import Patterns, ScanWriter
    s = tiny(n_nominal=5)
    _, mem, _ = simulate(s, blocks())
    out = (tmp_path / "nominal.h5", tmp_path / "reduced.h5")
    written = []
    real = ScanWriter.write_angle

    def killed_after_three(self, i, patterns):
        if len(written) == 3:
            raise KeyboardInterrupt  # the simulation killed while it makes angle 3 of the nominal scan
        written.append(i)
        real(self, i, patterns)
    monkeypatch.setattr(ScanWriter, "write_angle", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        simulate(s, blocks(), out)
    assert not out[0].exists() and (tmp_path / ".nominal.h5.partial").exists()
    monkeypatch.setattr(ScanWriter, "write_angle", lambda self, i, p: (written.append(i), real(self, i, p)))
    _, nom, red = simulate(s, blocks(), out)
    assert written == [0, 1, 2, 3, 4, 0, 1]  # the rerun made only the angles not yet written, then the reduced scan
    assert isinstance(nom.intensities, Patterns) and out[0].exists() and out[1].exists()
    np.testing.assert_array_equal(np.asarray(nom.intensities), mem.intensities)  # each angle's own noise
    np.testing.assert_array_equal(read_scan(out[0]).intensities, mem.intensities)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nominal.h5", "reduced.h5"]
    assert "Poisson, each angle" in read_scan(out[1]).attrs["simulation"]["noise"]
    # other settings: the partial file of the first is not resumed
    written.clear()
    simulate(tiny(n_nominal=5, seed=3), blocks(), out)
    assert written == [0, 1, 2, 3, 4, 0, 1]
    assert not np.array_equal(read_scan(out[0]).intensities, mem.intensities)

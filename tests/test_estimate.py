"""Estimates before each stage: the approximant's memory estimate against a measured peak, a stage
over the memory limit stops with exit 2 and writes nothing, --dry-run prints and writes nothing."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rapidtomo.cli import main
from rapidtomo.errors import UserError
from rapidtomo.estimate import Estimate, ScanShape, available_bytes, check_fits, estimate_approximant
from rapidtomo.io import Volume, write_scan
from rapidtomo.recon.approximant import ApproximantSettings
from rapidtomo.simulate import SimulateSettings, simulate


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    """A (32, 64, 256) sample's 3 simulated angles (fast model), repeated to 21 angles over 140°:
    the demo's reduced-scan sizes (540 positions of 32² patterns, 2 modes) in seconds."""
    rng = np.random.default_rng(0)
    v = np.zeros((32, 64, 256), np.float32)
    for _ in range(40):
        z, y, x = rng.integers(0, 28), rng.integers(0, 56), rng.integers(0, 248)
        v[z:z + 4, y:y + 8, x:x + 8] += 0.05
    s = SimulateSettings(shape=v.shape, n_nominal=1, n_reduced=3, photons=1e5, model="fast")
    scan = simulate(s, Volume(v, (28e-9,) * 3))[2]
    idx = np.arange(21) % 3
    scan = scan.subset(idx)
    scan.angles_deg = np.linspace(-70.4, 70.4, 21)
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    write_scan(path, scan)
    return path


MEASURE = textwrap.dedent("""
    import json, sys
    import torch
    from rapidtomo.estimate import ScanShape, estimate_approximant
    from rapidtomo.io import open_scan
    from rapidtomo.recon.approximant import ApproximantSettings, approximant
    torch.set_num_threads(1)
    def rss():  # peak resident bytes of this process image (ru_maxrss would include the parent's before exec)
        line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    s = ApproximantSettings(iterations=1, batch_size=int(sys.argv[2]) or None)
    est = estimate_approximant(ScanShape.from_file(sys.argv[1]), s)  # also loads the FFT and autograd code
    base = rss()
    approximant(open_scan(sys.argv[1]), s)  # as the stage reads it
    peak = rss()
    print(json.dumps({"base": base, "peak": peak, "measured": peak - base,
                      "estimate": est.peak_bytes - est.parts["process"]}))
""")


@pytest.mark.parametrize("batch", [0, 100])
def test_approximant_memory_estimate_within_2x_of_the_measured_peak(scan_file, tmp_path, batch):
    script = tmp_path / "measure.py"
    script.write_text(MEASURE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAPIDTOMO_QUIET": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, str(script), str(scan_file), str(batch)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"batch {batch or 'default'}: measured peak {r['measured'] / 1e6:.1f} MB above the warm process, "
          f"estimate {r['estimate'] / 1e6:.1f} MB, ratio {r['measured'] / r['estimate']:.2f}")
    assert 0.5 < r["measured"] / r["estimate"] < 2


def test_a_stage_over_the_memory_limit_stops_with_one_line_and_writes_nothing(scan_file, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.setenv("RAPIDTOMO_MEMORY_LIMIT", "1e8")
    out = tmp_path / "a.h5"
    assert main(["approximant", str(scan_file), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs about" in err and "100 MB is available" in err
    assert "batch_size" in err or "machine" in err  # says what to change
    assert list(tmp_path.iterdir()) == []
    # the pipeline checks before any work: nothing is created
    assert main(["pipeline", str(tmp_path / "run"), "--dry-run"]) == 2
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RAPIDTOMO_MEMORY_LIMIT", "lots")
    with pytest.raises(UserError, match="RAPIDTOMO_MEMORY_LIMIT='lots': must be a number of bytes"):
        available_bytes()


def test_dry_run_prints_estimates_and_writes_nothing(scan_file, tmp_path, capsys):
    assert main(["approximant", str(scan_file), "-o", str(tmp_path / "a.h5"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[approximant] estimate: peak") and "patterns/s" in out and "wrote" not in out
    cfg = tmp_path / "c.toml"
    cfg.write_text("[simulate]\nshape = [8, 32, 64]\nn_nominal = 12\nn_reduced = 5\n[train]\npatch = 8\n")
    assert main(["pipeline", str(tmp_path / "run"), "--config", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for stage in ("simulate", "golden", "fbp", "sart", "approximant", "train", "predict"):
        assert f"[{stage}] estimate: peak" in out, stage
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]


def test_every_stage_command_has_a_dry_run_that_writes_nothing(scan_file, tmp_path, capsys):
    from rapidtomo.io import write_volume
    from rapidtomo.nn import build_network, save_model
    from rapidtomo.train import TrainSettings
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    a, g, m = inputs / "a.h5", inputs / "g.h5", inputs / "m.pt"
    write_volume(a, Volume(rng.random((6, 16, 32), dtype=np.float32), (2e-8,) * 3))
    write_volume(g, Volume(rng.random((6, 32, 64), dtype=np.float32), (2e-8, 1e-8, 1e-8)))
    tiny = ["--widths", "2", "4", "--rates", "1", "2", "--z-rates", "2", "3", "--patch", "8"]
    net = build_network(TrainSettings(widths=[2, 4], rates=[1, 2], z_rates=[2, 3], patch=8).network_settings(6))
    save_model(m, net, {"approximant_mean": 0.0, "approximant_std": 1.0, "output_scale": 1.0, "output_offset": 0.0}, 8,
               {"target_z": 6})
    out = tmp_path / "out"
    commands = {"simulate": ["simulate", "--out", str(out), "--shape", "8", "32", "64"],
                "golden": ["golden", str(scan_file), "-o", str(out / "g.h5")],
                "fbp": ["baseline", str(scan_file), "-o", str(out / "b.h5")],
                "approximant": ["approximant", str(scan_file), "-o", str(out / "a.h5")],
                "train": ["train", "--approximant", str(a), "--target", str(g), "-o", str(out / "m.pt"), *tiny],
                "predict": ["predict", str(m), str(a), "-o", str(out / "p.h5")]}
    for stage, argv in commands.items():
        assert main(argv + ["--dry-run"]) == 0, stage
        printed = capsys.readouterr().out
        assert printed.startswith(f"[{stage if stage != 'fbp' else 'baseline'}] estimate: peak"), printed
        assert not out.exists(), stage


def test_check_fits_compares_all_processes_with_the_memory_available():
    est = Estimate("approximant", {"process": 3e8, "scan": 2e8}, 1.0, "test", "do less", processes=2)
    check_fits(est, available=1.0e9)
    with pytest.raises(UserError, match=r"\[approximant\] needs about 1 GB \(2 processes\) but 999 MB .*: do less"):
        check_fits(est, available=0.999e9)


def test_scan_shape_from_a_file_matches_the_scan(scan_file):
    s = ScanShape.from_file(scan_file)
    assert (s.n_angles, s.window, s.n_modes, s.volume_shape) == (21, (32, 32), 2, (32, 64, 256))
    assert s.scan_bytes == 4 * 21 * s.n_pos * 32 * 32
    assert estimate_approximant(s, ApproximantSettings(), world=2).processes == 2


def test_the_ptychography_calibration_runs_the_real_solver_and_restores_the_thread_count():
    import torch
    from rapidtomo.estimate import ptychography_seconds
    before = torch.get_num_threads()
    t = ptychography_seconds(1, (8, 8), 1, 4, "cpu", threads=1)
    assert 0 < t < 1 and torch.get_num_threads() == before

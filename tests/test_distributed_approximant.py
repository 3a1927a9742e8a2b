"""The approximant under torchrun: 2 processes split the angles and give the one-process volume."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rapidtomo.cli import main
from rapidtomo.distributed import Processes
from rapidtomo.io import Volume, read_scan, read_volume, write_scan
from rapidtomo.recon.approximant import ApproximantSettings, build_problem
from rapidtomo.simulate import SimulateSettings, simulate


def test_share_splits_every_item_once_in_contiguous_blocks():
    for n, world in [(5, 2), (7, 3), (4, 4), (21, 8)]:
        blocks = [Processes(r, world).share(n) for r in range(world)]
        assert [i for b in blocks for i in b] == list(range(n))
        assert max(len(b) for b in blocks) - min(len(b) for b in blocks) <= 1


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    v = np.zeros((15, 32, 64), np.float32)
    for _ in range(20):
        z, y, x = rng.integers(0, 12), rng.integers(0, 26), rng.integers(0, 58)
        v[z:z + 3, y:y + 5, x:x + 6] += 0.05
    s = SimulateSettings(shape=v.shape, n_nominal=1, n_reduced=3, photons=1e5, n_modes=2)
    path = tmp_path_factory.mktemp("scan") / "scan.h5"
    write_scan(path, simulate(s, Volume(v, (28e-9,) * 3))[2])
    return path


def test_torchrun_two_processes_equal_one_process(scan_file, tmp_path):
    flags = ["--iterations", "1"]
    assert main(["approximant", str(scan_file), "-o", str(tmp_path / "one.h5"), *flags]) == 0
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "two" / "two.h5"
    out.parent.mkdir()
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "rapidtomo.cli",
                           "approximant", str(scan_file), "-o", str(out), *flags], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone reports
    assert sorted(p.name for p in out.parent.iterdir()) == ["two.h5", "two.json"]  # and writes
    one, two = read_volume(tmp_path / "one.h5"), read_volume(out)
    rel = np.linalg.norm(two.data - one.data) / np.linalg.norm(one.data)
    print(f"torchrun 2 vs 1 process: relative difference {rel:.2e}")
    assert rel < 1e-5
    info_one, info_two = (json.loads(p.with_suffix(".json").read_text()) for p in (tmp_path / "one.h5", out))
    assert info_one["world_size"] == 1 and info_two["world_size"] == 2
    np.testing.assert_allclose(info_two["loss_history"], info_one["loss_history"], rtol=1e-6)


def test_more_processes_than_angles_is_refused(scan_file):
    with pytest.raises(ValueError, match="4 processes for 3 angles: run at most 3"):
        build_problem(read_scan(scan_file), ApproximantSettings(), torch.device("cpu"), Processes(0, 4))


def test_the_pipeline_refuses_torchrun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["pipeline", str(tmp_path / "run"), "--dry-run"]) == 2
    assert "runs in one process" in capsys.readouterr().err and list(tmp_path.iterdir()) == []

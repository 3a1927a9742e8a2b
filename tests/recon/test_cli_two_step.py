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

"""The ablation over several seeds: one record per variant with means, spreads and the per-seed values."""
import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from rapidtomo.experiments.ablation import ablation, write_ablation
from rapidtomo.io import Volume, write_volume

pytestmark = pytest.mark.usefixtures("one_thread")


def test_ablation_over_seeds_averages_each_variant(tmp_path):
    rng = np.random.default_rng(0)
    g = (gaussian_filter(rng.standard_normal((4, 32, 80)), 2) > 0).astype(np.float32)
    a = gaussian_filter(g, (1, 2, 2))[:, ::2, ::2] + 0.1 * rng.standard_normal((4, 16, 40)).astype(np.float32)
    write_volume(tmp_path / "approximant.h5", Volume(a, (2e-8,) * 3))
    write_volume(tmp_path / "golden.h5", Volume(g, (2e-8, 1e-8, 1e-8)))
    train = {"widths": [2, 4], "rates": [1, 2], "z_rates": [2, 3], "patch": 8, "epochs": 1}
    (tmp_path / "pipeline_settings.json").write_text(json.dumps({"pipeline": {"seed": 0}, "train": train}))
    records = ablation(tmp_path, ["A", "E"], seeds=[0, 1, 2])
    assert [r["variant"] for r in records] == ["A", "E"]
    for r in records:
        assert r["seeds"] == [0, 1, 2] and [s["seed"] for s in r["per_seed"]] == [0, 1, 2]
        pccs = [s["pcc"] for s in r["per_seed"]]
        assert r["pcc"] == pytest.approx(np.mean(pccs)) and r["pcc_std"] == pytest.approx(np.std(pccs, ddof=1))
        assert r["pcc_std"] > 0                      # the seeds trained different networks
        assert all((tmp_path / "ablation" / f"model_{r['variant']}_s{s}.pt").exists() for s in (0, 1, 2))
    paths = write_ablation(tmp_path, records)
    assert json.loads(paths["json"].read_text())[1]["per_seed"][2]["seed"] == 2

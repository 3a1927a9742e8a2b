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
    train = {"widths": [2, 4], "rates": [1, 2], "z_rates": [2, 3], "patch": 8, "epochs": 1,
             "inputs": ["approximant"]}  # the pipeline default takes sart.h5 too
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


def test_ablation_scores_the_held_out_part_against_the_truth_and_the_golden(tmp_path):
    """With a truth in the run (phantom.h5), the record's metrics are the prediction's against it
    on the held-out x range, and ``vs_golden`` against the golden standard there."""
    from rapidtomo.infer import predict
    from rapidtomo.metrics.evaluate import evaluate
    rng = np.random.default_rng(1)
    truth = (gaussian_filter(rng.standard_normal((4, 32, 80)), 2) > 0).astype(np.float32)
    golden = gaussian_filter(truth, 1) + 0.3 * rng.standard_normal(truth.shape).astype(np.float32)
    a = gaussian_filter(truth, (1, 2, 2))[:, ::2, ::2] + 0.1 * rng.standard_normal((4, 16, 40)).astype(np.float32)
    write_volume(tmp_path / "approximant.h5", Volume(a, (2e-8,) * 3))
    write_volume(tmp_path / "golden.h5", Volume(golden, (2e-8, 1e-8, 1e-8)))
    write_volume(tmp_path / "phantom.h5", Volume(truth, (2e-8, 1e-8, 1e-8)))
    train = {"widths": [2, 4], "rates": [1, 2], "z_rates": [2, 3], "patch": 8, "epochs": 1, "train_fraction": 0.5,
             "inputs": ["approximant"]}
    (tmp_path / "pipeline_settings.json").write_text(json.dumps({"pipeline": {"seed": 0}, "train": train}))
    [r] = ablation(tmp_path, ["E"], seeds=[3])
    pred = {"rapid": predict(tmp_path / "ablation" / "model_E.pt", Volume(a, (2e-8,) * 3))}
    held_out = "x=40:80"  # train_fraction 0.5 of the golden's 80 columns
    vs_truth = evaluate(Volume(truth, (2e-8, 1e-8, 1e-8)), pred, held_out)["rapid"]
    vs_golden = evaluate(Volume(golden, (2e-8, 1e-8, 1e-8)), pred, held_out)["rapid"]
    assert r["reference"] == "truth"
    for k in ("pcc", "ms_ssim", "ber", "dice"):
        assert r[k] == pytest.approx(vs_truth[k]) and r["per_seed"][0][k] == pytest.approx(vs_truth[k])
        assert r["vs_golden"][k] == pytest.approx(vs_golden[k])
    assert abs(r["pcc"] - r["vs_golden"]["pcc"]) > 1e-3  # the two references differ
    whole = evaluate(Volume(truth, (2e-8, 1e-8, 1e-8)), pred)["rapid"]["pcc"]
    assert r["pcc"] != pytest.approx(whole, abs=1e-6)  # scored on the held-out part, not the whole volume

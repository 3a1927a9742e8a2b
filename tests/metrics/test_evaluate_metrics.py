import json

import numpy as np
import pytest

from rapidtomo.cli import main
from rapidtomo.io import Volume, read_volume, write_volume
from rapidtomo.metrics import pcc
from rapidtomo.metrics.evaluate import Region, background_ber, evaluate, resample_to


def centres(n, d):
    """Physical voxel-centre coordinates of a centred grid."""
    return (np.arange(n) - (n - 1) / 2) * d


def layered(rng, shape=(8, 16, 32)):
    """A piecewise-constant two-phase volume, smooth enough to survive 2x coarsening."""
    blocks = rng.random((shape[0], shape[1] // 4, shape[2] // 4)) < 0.35
    return np.kron(blocks, np.ones((1, 4, 4))).astype(np.float64) + 0.02 * rng.normal(size=shape)


def test_region_parsing():
    assert Region.parse("x=0.6:1.0").slices((4, 10, 100)) == (slice(0, 4), slice(0, 10), slice(60, 100))
    assert Region.parse("x=0.6:1").ranges == {"x": (0.6, 1.0)}
    assert Region.parse("x=150:256, z=2:5").slices((8, 4, 300)) == (slice(2, 5), slice(0, 4), slice(150, 256))
    for bad in ("x=0.6", "w=0:1", "x=0.8:0.2", "x=0.5:1.5", "x=1:2,x=3:4", ""):
        with pytest.raises(ValueError):
            Region.parse(bad)
    with pytest.raises(ValueError):
        Region.parse("x=300:400").slices((4, 4, 256))


@pytest.mark.parametrize("fine,coarse", [((6, 16, 24), (6, 8, 12)), ((5, 15, 21), (5, 7, 10)), ((4, 8, 8), (2, 8, 8))])
def test_resampling_reproduces_a_linear_field_by_physical_coordinates(fine, coarse):
    extent = 1e-6
    d_f = tuple(extent / n for n in fine)
    d_c = tuple(extent / n for n in coarse)

    def field(shape, d):
        z, y, x = np.meshgrid(*(centres(n, s) for n, s in zip(shape, d)), indexing="ij")
        return 1.0 + 2e6 * x - 3e6 * y + 0.5e6 * z

    src = Volume(field(coarse, d_c), d_c)
    ref = Volume(field(fine, d_f), d_f)
    up = resample_to(src, ref)
    # inside the coarse grid's outermost centres the interpolation is exact; values scale with dz
    inner = tuple(slice(int(np.ceil((n_f / n_c - 1) / 2)) + 1, n_f - int(np.ceil((n_f / n_c - 1) / 2)) - 1)
                  if n_f != n_c else slice(None) for n_f, n_c in zip(fine, coarse))
    np.testing.assert_allclose(up[inner], ref.data[inner] * d_f[0] / d_c[0], rtol=1e-10, atol=1e-12)
    sub = resample_to(src, ref, Region({"x": (3, 5)}))
    np.testing.assert_allclose(sub, up[:, :, 3:5])


def test_evaluate_resamples_a_coarse_volume_and_restricts_to_the_region(rng):
    truth = layered(rng)
    fine = Volume(truth, (1e-8, 1e-8, 1e-8))
    coarse = Volume(truth.reshape(8, 8, 2, 16, 2).mean((2, 4)), (1e-8, 2e-8, 2e-8))
    assert pcc(resample_to(coarse, fine), truth) > 0.9
    spoiled = truth.copy()
    spoiled[:, :, :16] = rng.normal(size=(8, 16, 16))  # only outside x ≥ 0.5
    r = evaluate(fine, {"same": fine, "coarse": coarse, "spoiled": Volume(spoiled, fine.voxel_size_m)},
                 region=(0.5, 1.0))
    assert r["same"] == {"pcc": pytest.approx(1.0), "ms_ssim": pytest.approx(1.0), "ber": 0.0, "dice": 1.0}
    assert r["spoiled"] == r["same"]
    assert 0.5 < r["coarse"]["pcc"] < 1.0 and r["coarse"]["ber"] > 0
    whole = evaluate(fine, {"spoiled": Volume(spoiled, fine.voxel_size_m)})
    assert whole["spoiled"]["pcc"] < 0.9


def test_background_ber_is_the_references_foreground_share_and_what_an_empty_guess_scores(rng):
    """A sparse foreground (5 % of the voxels): an all-background volume's BER equals that share,
    and a volume that finds half of the features but adds as many false ones scores worse."""
    ref = 0.02 * rng.normal(size=(8, 16, 40))
    features = rng.random(ref.shape) < 0.05
    ref[features] += 1.0
    share = background_ber(Volume(ref, (1e-8,) * 3))
    assert share == pytest.approx(features.mean(), abs=1e-3)
    assert background_ber(Volume(ref, (1e-8,) * 3), region=(0.5, 1.0)) == pytest.approx(features[..., 20:].mean(),
                                                                                          abs=1e-3)
    half = ref.copy()
    found = features & (rng.random(ref.shape) < 0.5)
    half[features & ~found] -= 1.0
    false = ~features & (rng.random(ref.shape) < features.mean() * 0.6)
    half[false] += 1.0
    r = evaluate(Volume(ref, (1e-8,) * 3), {"half": Volume(half, (1e-8,) * 3)})
    assert r["half"]["ber"] > share and r["half"]["dice"] > 0.3


def test_evaluate_cli_writes_metrics_and_refuses_bad_input(rng, tmp_path, capsys):
    truth = layered(rng)
    write_volume(tmp_path / "golden.h5", Volume(truth, (1e-8,) * 3))
    write_volume(tmp_path / "phantom.h5", Volume(truth + 0.01, (1e-8,) * 3))
    write_volume(tmp_path / "prediction.h5", Volume(truth + 0.1 * rng.normal(size=truth.shape), (1e-8,) * 3))
    write_volume(tmp_path / "approximant.h5", Volume(truth.reshape(8, 8, 2, 16, 2).mean((2, 4)), (1e-8, 2e-8, 2e-8)))
    code = main(["evaluate", "--reference", str(tmp_path / "golden.h5"), "--reference", str(tmp_path / "phantom.h5"),
                 str(tmp_path / "prediction.h5"), f"appx={tmp_path / 'approximant.h5'}", "--region", "x=0.5:1.0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "vs_golden" in out and "rapid" in out and "appx" in out
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m["vs_golden"]) == {"rapid", "appx"} and set(m["vs_truth"]) == {"rapid", "appx"}
    assert m["region_x_fraction"] == [0.5, 1.0]
    assert set(m["background_ber"]) == {"vs_golden", "vs_truth"} and 0 < m["background_ber"]["vs_golden"] < 1
    assert "(all background)" in out
    assert 0.9 < m["vs_golden"]["rapid"]["pcc"] < 1.0
    before = (tmp_path / "metrics.json").read_bytes()

    write_volume(tmp_path / "wide.h5", Volume(np.zeros((8, 16, 40)), (1e-8,) * 3))
    bad_runs = [(["--region", "x=0.9:0.1", str(tmp_path / "prediction.h5")], "--region"),
                ([str(tmp_path / "wide.h5")], "wide.h5"),
                ([str(tmp_path / "missing.h5")], "missing.h5")]
    for extra, named in bad_runs:
        assert main(["evaluate", "--reference", str(tmp_path / "golden.h5"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err and named in err
    assert (tmp_path / "metrics.json").read_bytes() == before
    assert read_volume(tmp_path / "golden.h5").shape == (8, 16, 32)

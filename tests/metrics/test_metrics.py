import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as lib_ms_ssim

from rapidtomo.io import Volume
from rapidtomo.metrics import ber_dice, fit_two_gaussians, ms_ssim, pcc, psd_planes, segmentation_scores
from rapidtomo.metrics.evaluate import evaluate, resample_to
from rapidtomo.metrics.similarity import ms_ssim_window


def test_pcc_matches_numpy(rng):
    a, b = rng.normal(size=(4, 5, 6)), rng.normal(size=(4, 5, 6))
    b += 0.5 * a
    assert pcc(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    assert pcc(a, 3 * a + 1) == pytest.approx(1.0)


def smooth_volume(rng, shape):
    v = rng.normal(size=shape)
    for ax in range(3):
        v = (v + np.roll(v, 1, ax) + np.roll(v, -1, ax)) / 3
    return v


@pytest.mark.parametrize("shape", [(16, 64, 64), (7, 33, 40), (32, 200, 180)])
def test_ms_ssim_self_is_one_and_drops_with_noise(rng, shape):
    v = smooth_volume(rng, shape)
    assert ms_ssim(v, v) == pytest.approx(1.0, abs=1e-9)
    s1 = ms_ssim(v + 0.1 * rng.normal(size=shape), v)
    s2 = ms_ssim(v + 0.5 * rng.normal(size=shape), v)
    assert 1 > s1 > s2


def test_ms_ssim_agrees_with_the_library_where_it_applies(rng):
    v = smooth_volume(rng, (24, 176, 176))
    w = v + 0.2 * rng.normal(size=v.shape)
    assert ms_ssim_window((24, 176, 176)) == (11, 5)
    lib = lib_ms_ssim(torch.from_numpy(w)[None, None], torch.from_numpy(v)[None, None],
                      data_range=float(v.max() - v.min()))
    assert ms_ssim(w, v) == pytest.approx(float(lib), rel=1e-9)


def test_ber_dice_known_counts():
    ref = np.zeros(100, bool)
    ref[:40] = True
    pred = np.zeros(100, bool)
    pred[10:60] = True  # TP 30, FP 20, FN 10, TN 40
    s = ber_dice(pred, ref)
    assert s["ber"] == pytest.approx(30 / 100) and s["dice"] == pytest.approx(60 / 90)


def test_em_recovers_a_known_mixture(rng):
    n = 200_000
    k = rng.random(n) < 0.3
    x = np.where(k, rng.normal(2.0, 0.5, n), rng.normal(-1.0, 0.3, n))
    g = fit_two_gaussians(x)
    np.testing.assert_allclose(g.priors, [0.7, 0.3], atol=0.01)
    np.testing.assert_allclose(g.means, [-1.0, 2.0], atol=0.02)
    np.testing.assert_allclose(g.sigmas, [0.3, 0.5], atol=0.02)
    # Bayes threshold on the reference gives near-perfect scores on itself, worse on a noisy copy
    ref = x.reshape(200, 1000)
    assert segmentation_scores(ref, ref)["dice"] > 0.99
    noisy = segmentation_scores(ref + rng.normal(0, 1.0, ref.shape), ref)
    assert noisy["dice"] < 0.95 and noisy["ber"] > 0.02


def test_psd_of_a_plane_wave_peaks_at_its_frequency():
    Z, Y, X = 16, 32, 64
    z, y, x = np.meshgrid(np.arange(Z), np.arange(Y), np.arange(X), indexing="ij")
    v = np.cos(2 * np.pi * (5 * x / X + 3 * z / Z))
    p = psd_planes(v)["kx_kz"]
    kz, kx = np.unravel_index(np.argmax(p), p.shape)
    assert (abs(kz - Z // 2), abs(kx - X // 2)) == (3, 5)


def test_resampling_a_coarse_volume_and_evaluate(rng):
    fine = Volume(np.kron(smooth_volume(rng, (8, 8, 16)), np.ones((1, 2, 2))), (1e-8, 1e-8, 1e-8))
    coarse = Volume(fine.data.reshape(8, 8, 2, 16, 2).mean((2, 4)), (1e-8, 2e-8, 2e-8))
    up = resample_to(coarse, fine)
    assert up.shape == fine.shape and pcc(up, fine.data) > 0.9
    r = evaluate(fine, {"same": fine, "coarse": coarse}, region=(0.5, 1.0))
    assert r["same"]["pcc"] == pytest.approx(1.0) and r["same"]["dice"] == pytest.approx(1.0)
    assert r["coarse"]["pcc"] < 1.0

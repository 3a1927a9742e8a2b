import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as lib_ms_ssim

from rapidtomo.metrics import ms_ssim, ms_ssim_plan, pcc
from rapidtomo.metrics.similarity import WANG_WEIGHTS, _halved


def smooth_volume(rng, shape):
    v = rng.normal(size=shape)
    for ax in range(3):
        if shape[ax] > 2:
            v = (v + np.roll(v, 1, ax) + np.roll(v, -1, ax)) / 3
    return v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 5, 6), (1, 7, 3), (10,)])
def test_pcc_matches_numpy_corrcoef(rng, shape, dtype):
    a = rng.normal(size=shape).astype(dtype)
    b = (rng.normal(size=shape) + 0.5 * a).astype(dtype)
    assert pcc(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-6 if dtype == np.float32 else 1e-12)
    assert pcc(a, -3 * a + 1) == pytest.approx(-1.0)


def test_pcc_of_a_constant_is_zero_and_shapes_must_match(rng):
    assert pcc(np.ones((3, 3)), rng.normal(size=(3, 3))) == 0.0
    with pytest.raises(ValueError):
        pcc(np.ones(3), np.ones(4))


@pytest.mark.parametrize("shape", [(8, 48, 90), (7, 33, 40), (1, 20, 20), (40, 12, 12)])
def test_ms_ssim_of_itself_is_one_and_drops_with_noise(rng, shape):
    v = smooth_volume(rng, shape)
    assert ms_ssim(v, v) == pytest.approx(1.0, abs=1e-12)
    noise = rng.normal(size=shape)
    s1, s2, s3 = (ms_ssim(v + a * noise, v) for a in (0.1, 0.5, 2.0))
    assert 1 > s1 > s2 > s3 >= 0


def test_ms_ssim_is_symmetric_for_a_given_range(rng):
    v = smooth_volume(rng, (12, 40, 36))
    w = v + 0.3 * rng.normal(size=v.shape)
    assert ms_ssim(v, w, data_range=4.0) == pytest.approx(ms_ssim(w, v, data_range=4.0), rel=1e-12)


@pytest.mark.parametrize("shape", [(48, 48, 48), (48, 64, 80)])
def test_ms_ssim_agrees_with_pytorch_msssim_where_it_applies(rng, shape):
    # every axis > (win − 1)·16 and even at every scale: the library's 3D MS-SSIM is defined as is
    v = smooth_volume(rng, shape)
    w = v + 0.3 * rng.normal(size=shape)
    assert ms_ssim_plan(shape, win_size=3).windows == (3, 3, 3)
    lib = lib_ms_ssim(torch.from_numpy(w)[None, None], torch.from_numpy(v)[None, None],
                      data_range=float(v.max() - v.min()), win_size=3)
    assert ms_ssim(w, v, win_size=3) == pytest.approx(float(lib), rel=1e-10)


@pytest.mark.slow
def test_ms_ssim_agrees_with_pytorch_msssim_at_the_default_window(rng):
    shape = (176, 176, 176)
    v = smooth_volume(rng, shape)
    w = v + 0.3 * rng.normal(size=shape)
    assert ms_ssim_plan(shape) == ms_ssim_plan(shape, win_size=11)
    assert ms_ssim_plan(shape).windows == (11, 11, 11) and ms_ssim_plan(shape).levels == 5
    lib = lib_ms_ssim(torch.from_numpy(w)[None, None], torch.from_numpy(v)[None, None],
                      data_range=float(v.max() - v.min()))
    assert ms_ssim(w, v) == pytest.approx(float(lib), rel=1e-10)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 9), (7, 33, 40), (32, 64, 256), (16, 200, 30),
                                   (320, 6656, 280), (161, 161, 3), (160, 160, 160)])
def test_ms_ssim_plan_follows_the_documented_rule(shape):
    plan = ms_ssim_plan(shape)
    second = sorted(shape)[1]
    L = plan.levels
    assert 1 <= L <= 5
    # the two longest axes keep a full 11-sample window at the coarsest scale, and one more scale would not
    assert L == 1 or _halved(second, L - 1) >= 11
    assert L == 5 or _halved(second, L) < 11
    for n, w in zip(shape, plan.windows):
        coarse = _halved(n, L - 1)
        assert w % 2 == 1 and w <= min(11, coarse)
        assert w == 1 or w + 2 > min(11, coarse)  # the largest odd window that fits
        assert w != 1 or coarse < 3 or min(11, coarse) < 3
    assert sum(plan.weights) == pytest.approx(1.0 if L < 5 else sum(WANG_WEIGHTS))
    np.testing.assert_allclose(np.asarray(plan.weights) / plan.weights[0],
                               np.asarray(WANG_WEIGHTS[:L]) / WANG_WEIGHTS[0])


def test_ms_ssim_refuses_mismatched_shapes():
    with pytest.raises(ValueError):
        ms_ssim(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))
    with pytest.raises(ValueError):
        ms_ssim_plan((4, 4, 4), win_size=4)

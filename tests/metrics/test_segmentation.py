import numpy as np
import pytest
from scipy.stats import norm

from rapidtomo.metrics import TwoGaussians, ber_dice, fit_two_gaussians, segmentation_scores


def test_ber_dice_on_masks_with_known_counts():
    ref = np.zeros(100, bool)
    ref[:40] = True
    pred = np.zeros(100, bool)
    pred[10:60] = True  # TP 30, FP 20, FN 10, TN 40
    s = ber_dice(pred, ref)
    assert s["ber"] == pytest.approx(30 / 100)
    assert s["dice"] == pytest.approx(2 * 30 / (2 * 30 + 10 + 20))
    assert ber_dice(ref, ref) == {"ber": 0.0, "dice": 1.0}
    assert ber_dice(~ref, ref) == {"ber": 1.0, "dice": 0.0}


def test_em_recovers_a_known_two_gaussian_mixture(rng):
    n = 200_000
    k = rng.random(n) < 0.3
    x = np.where(k, rng.normal(2.0, 0.5, n), rng.normal(-1.0, 0.3, n))
    g = fit_two_gaussians(rng.permutation(x))
    np.testing.assert_allclose(g.priors, [0.7, 0.3], atol=0.01)
    np.testing.assert_allclose(g.means, [-1.0, 2.0], atol=0.02)
    np.testing.assert_allclose(g.sigmas, [0.3, 0.5], atol=0.02)


def test_em_with_fixed_priors_keeps_them(rng):
    n = 100_000
    k = rng.random(n) < 0.5
    x = np.where(k, rng.normal(5.0, 1.0, n), rng.normal(0.0, 1.0, n))
    g = fit_two_gaussians(x, priors=(0.8, 0.2))
    np.testing.assert_array_equal(g.priors, [0.8, 0.2])
    assert g.means[0] < 1.0 and g.means[1] > 4.0


@pytest.mark.parametrize("params", [((0.7, 0.3), (-1.0, 2.0), (0.3, 0.5)), ((0.5, 0.5), (0.0, 1.0), (0.2, 0.2)),
                                    ((0.95, 0.05), (0.0, 3.0), (1.0, 0.4))])
def test_threshold_is_where_the_weighted_densities_cross(params):
    p, m, s = (np.asarray(v) for v in params)
    g = TwoGaussians(p, m, s)
    t = g.threshold()
    assert m[0] < t < m[1]
    assert p[0] * norm.pdf(t, m[0], s[0]) == pytest.approx(p[1] * norm.pdf(t, m[1], s[1]), rel=1e-9)
    x = np.linspace(m[0], m[1], 101)
    favours_1 = p[1] * norm.pdf(x, m[1], s[1]) > p[0] * norm.pdf(x, m[0], s[0])
    np.testing.assert_array_equal(g.classify(x), favours_1)


def test_scores_count_flipped_voxels_through_the_em_thresholds(rng):
    shape = (8, 40, 50)
    mask = rng.random(shape) < 0.25
    ref = np.where(mask, 1.0, 0.0) + rng.normal(0, 0.05, shape)
    pred = ref.copy()
    ones = np.flatnonzero(mask)
    flipped = rng.choice(ones, 300, replace=False)
    pred.flat[flipped] -= 1.0  # 300 false negatives, nothing else changes
    s = segmentation_scores(pred, ref)
    tp = mask.sum() - 300
    assert s["ber"] == pytest.approx(300 / mask.size)
    assert s["dice"] == pytest.approx(2 * tp / (2 * tp + 300))


def test_scores_are_perfect_on_the_reference_and_worse_with_noise(rng):
    n = 100_000
    k = rng.random(n) < 0.3
    ref = np.where(k, rng.normal(2.0, 0.3, n), rng.normal(0.0, 0.3, n)).reshape(100, 1000)
    assert segmentation_scores(ref, ref) == {"ber": 0.0, "dice": 1.0}
    mild = segmentation_scores(ref + rng.normal(0, 0.3, ref.shape), ref)
    strong = segmentation_scores(ref + rng.normal(0, 1.5, ref.shape), ref)
    assert 0 < mild["ber"] < strong["ber"] and 1 > mild["dice"] > strong["dice"]


def test_a_test_volume_on_another_scale_is_thresholded_with_its_own_densities(rng):
    # the priors come from the reference, the class densities from the test volume itself
    shape = (6, 50, 50)
    mask = rng.random(shape) < 0.4
    ref = np.where(mask, 1.0, 0.0) + rng.normal(0, 0.05, shape)
    s = segmentation_scores(3.0 * ref + 10.0, ref)
    assert s == {"ber": 0.0, "dice": 1.0}

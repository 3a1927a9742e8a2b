"""Segmentation metrics with the paper's thresholding: a two-Gaussian mixture fitted by EM.

The reference (golden standard) is fitted by EM: priors p(0), p(1), means, standard deviations.
Each test volume gets its own class densities p(x|k) by EM with the priors held at the
reference's, and every volume is thresholded where p(x|0)p(0) = p(x|1)p(1) (Bayes' rule), at
the crossing between the two means. BER = (FP + FN)/all (Eq. 14), DICE = 2TP/(2TP + FN + FP)
(Eq. 13), class 1 (the higher mean: metal in an IC) being the positive class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TwoGaussians:
    """A two-component 1D Gaussian mixture, each field of shape (2,); class 1 has the higher mean."""

    priors: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """``log p(x|k) + log p(k)`` up to a common constant, shape ``(2, n)`` for ``n`` values."""
        x = np.asarray(x, dtype=np.float64).ravel()[None]
        m, s, p = self.means[:, None], self.sigmas[:, None], self.priors[:, None]
        return -0.5 * ((x - m) / s) ** 2 - np.log(s) + np.log(p)

    def threshold(self) -> float:
        """The value between the means where p(x|0)p(0) = p(x|1)p(1).

        With unequal widths the quadratic has two roots; the one between the means (else the one
        nearest their midpoint) is the decision boundary. No crossing → ±inf (all one class).
        """
        (m0, m1), (s0, s1), (p0, p1) = self.means, self.sigmas, self.priors
        # log N(x; m0, s0) + log p0 − log N(x; m1, s1) − log p1 = a x² + b x + c
        a = 0.5 / s1**2 - 0.5 / s0**2
        b = m0 / s0**2 - m1 / s1**2
        c = 0.5 * m1**2 / s1**2 - 0.5 * m0**2 / s0**2 + np.log(s1 * p0 / (s0 * p1))
        if abs(a) <= 1e-9 * (0.5 / s0**2 + 0.5 / s1**2):  # equal widths: one linear crossing
            roots = np.array([-c / b]) if b != 0 else np.array([])
        else:
            disc = b * b - 4 * a * c
            roots = np.array([]) if disc < 0 else (-b + np.array([-1.0, 1.0]) * np.sqrt(disc)) / (2 * a)
        if roots.size == 0:
            return float(-np.inf if p1 > p0 else np.inf)
        inside = roots[(roots >= m0) & (roots <= m1)]
        pick = inside if inside.size else roots
        return float(pick[np.argmin(np.abs(pick - 0.5 * (m0 + m1)))])

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of class 1: ``x > threshold()``, same shape as ``x``."""
        return np.asarray(x) > self.threshold()


def fit_two_gaussians(x, priors=None, iterations: int = 500, max_samples: int = 2_000_000,
                      seed: int = 0) -> TwoGaussians:
    """EM fit of two Gaussians to the values ``x`` (any shape).

    ``priors`` given (p(0), p(1)) → held fixed, only means and widths are fitted. Started from the
    25th/75th percentiles; stops when the means move less than 1e-9 of the data's spread; at
    most ``max_samples`` values are used (a seeded random subsample of larger volumes).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError("fit_two_gaussians needs at least 2 values")
    if x.size > max_samples:
        x = np.random.default_rng(seed).choice(x, max_samples, replace=False)
    spread = max(float(x.std()), 1e-12 * max(1.0, float(np.abs(x).max())))
    lo, hi = np.percentile(x, [25, 75])
    if hi - lo < 1e-3 * spread:
        lo, hi = x.mean() - spread, x.mean() + spread
    fixed = priors is not None
    p = np.asarray(priors if fixed else (0.5, 0.5), dtype=np.float64)
    if p.shape != (2,) or np.any(p <= 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError(f"priors must be two positive numbers summing to 1, got {priors}")
    g = TwoGaussians(p, np.array([lo, hi]), np.array([spread, spread]) / 2)
    floor = 1e-6 * spread
    for _ in range(iterations):
        lj = g.log_joint(x)
        r = np.exp(lj - lj.max(0))
        r /= r.sum(0)
        n = r.sum(1) + 1e-300
        means = (r @ x) / n
        sigmas = np.sqrt(np.maximum((r * (x[None] - means[:, None]) ** 2).sum(1) / n, floor**2))
        done = np.allclose(means, g.means, rtol=0, atol=1e-9 * spread)
        g = TwoGaussians(p if fixed else n / n.sum(), means, sigmas)
        if done:
            break
    if g.means[0] > g.means[1]:
        g = TwoGaussians(g.priors[::-1] if not fixed else p, g.means[::-1], g.sigmas[::-1])
    return g


def ber_dice(pred_mask, ref_mask) -> dict[str, float]:
    """BER (Eq. 14) and DICE (Eq. 13) of a boolean mask against a reference mask of the same shape."""
    p, r = np.asarray(pred_mask, bool), np.asarray(ref_mask, bool)
    if p.shape != r.shape:
        raise ValueError(f"masks differ in shape: {p.shape} and {r.shape}")
    tp = np.count_nonzero(p & r)
    fp = np.count_nonzero(p & ~r)
    fn = np.count_nonzero(~p & r)
    dice = 2 * tp / (2 * tp + fn + fp) if (2 * tp + fn + fp) else 1.0
    return {"ber": (fp + fn) / p.size, "dice": float(dice)}


def segmentation_scores(pred, reference, reference_fit: TwoGaussians | None = None) -> dict[str, float]:
    """``{"ber", "dice"}`` of volume ``pred`` against ``reference`` (same shape), paper's thresholding.

    ``reference_fit`` (the reference's EM fit) saves refitting when several volumes are scored.
    """
    ref_fit = reference_fit or fit_two_gaussians(reference)
    pred_fit = fit_two_gaussians(pred, priors=ref_fit.priors)
    return ber_dice(pred_fit.classify(pred), ref_fit.classify(reference))

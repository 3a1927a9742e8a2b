"""Segmentation metrics with the paper's thresholding: a two-Gaussian mixture fitted by EM.

The reference (golden standard) is fitted by EM (priors p(0), p(1), means, variances) and
thresholded by Bayes' rule p(x|0)p(0) = p(x|1)p(1). Each test volume gets its own class
densities by EM with the priors held at the reference's, and is thresholded by the same rule.
BER = (FP + FN)/all (Eq. 14), DICE = 2TP/(2TP + FN + FP) (Eq. 13).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TwoGaussians:
    """A two-component 1D Gaussian mixture: priors, means, standard deviations (class 1 = higher mean)."""

    priors: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """``log p(x|k) + log p(k)``, shape ``(2, n)``."""
        x = np.asarray(x, dtype=np.float64)[None]
        m, s, p = self.means[:, None], self.sigmas[:, None], self.priors[:, None]
        return -0.5 * ((x - m) / s) ** 2 - np.log(s) + np.log(p)

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Bayes' rule: True where p(x|1)p(1) > p(x|0)p(0)."""
        lj = self.log_joint(np.ravel(x))
        return (lj[1] > lj[0]).reshape(np.shape(x))


def fit_two_gaussians(x, priors: np.ndarray | None = None, iterations: int = 200, max_samples: int = 2_000_000,
                      seed: int = 0) -> TwoGaussians:
    """EM fit of two Gaussians to the values ``x``; ``priors`` given → held fixed (only means, sigmas fitted).

    Started from the 25th/75th percentiles; at most ``max_samples`` values (a seeded subsample).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size > max_samples:
        x = np.random.default_rng(seed).choice(x, max_samples, replace=False)
    lo, hi = np.percentile(x, [25, 75])
    spread = max(x.std(), 1e-12)
    g = TwoGaussians(np.array([0.5, 0.5]) if priors is None else np.asarray(priors, float),
                     np.array([lo, hi]) if hi > lo else np.array([lo - spread, hi + spread]),
                     np.array([spread, spread]) / 2)
    floor = 1e-6 * spread
    for _ in range(iterations):
        lj = g.log_joint(x)
        lj -= lj.max(0)
        r = np.exp(lj)
        r /= r.sum(0)
        n = r.sum(1) + 1e-300
        means = (r @ x) / n
        sigmas = np.sqrt(np.maximum((r * (x[None] - means[:, None]) ** 2).sum(1) / n, floor**2))
        new_priors = g.priors if priors is not None else n / n.sum()
        done = np.allclose(means, g.means, rtol=0, atol=1e-9 * spread)
        g = TwoGaussians(new_priors, means, sigmas)
        if done:
            break
    if g.means[0] > g.means[1]:
        g = TwoGaussians(g.priors[::-1], g.means[::-1], g.sigmas[::-1])
    return g


def ber_dice(pred_mask: np.ndarray, ref_mask: np.ndarray) -> dict[str, float]:
    """BER (Eq. 14) and DICE (Eq. 13) of boolean masks against a reference mask."""
    p, r = np.asarray(pred_mask, bool), np.asarray(ref_mask, bool)
    tp = np.count_nonzero(p & r)
    fp = np.count_nonzero(p & ~r)
    fn = np.count_nonzero(~p & r)
    total = p.size
    dice = 2 * tp / (2 * tp + fn + fp) if (2 * tp + fn + fp) else 1.0
    return {"ber": (fp + fn) / total, "dice": dice}


def segmentation_scores(pred, reference, reference_fit: TwoGaussians | None = None) -> dict[str, float]:
    """``{"ber", "dice"}`` of ``pred`` against ``reference`` with the paper's EM/Bayes thresholding."""
    ref_fit = reference_fit or fit_two_gaussians(reference)
    ref_mask = ref_fit.classify(reference)
    pred_fit = fit_two_gaussians(pred, priors=ref_fit.priors)
    return ber_dice(pred_fit.classify(pred), ref_mask)

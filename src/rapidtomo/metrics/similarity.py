"""Similarity of volumes: Pearson correlation (Eq. 11) and 3D multi-scale SSIM.

MS-SSIM uses pytorch-msssim's Gaussian window and its SSIM formula (K = (0.01, 0.03), relu on
each scale's term, Wang et al.'s weights) with one window length per axis, so that small and
anisotropic volumes (a thin z, a held-out strip) get a well-defined value. The rule is in
:func:`ms_ssim_plan` and docs/metrics.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d

WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MAX_WINDOW = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03


def pcc(a, b) -> float:
    """Pearson correlation coefficient of two arrays of the same shape (Eq. 11); 0 if one is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pcc needs equal shapes, got {a.shape} and {b.shape}")
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float((a @ b) / den) if den > 0 else 0.0


@dataclass(frozen=True)
class MsSsimPlan:
    """Scales and per-axis windows of a 3D MS-SSIM: ``windows`` = (wz, wy, wx), odd, 1 = no smoothing."""

    levels: int
    windows: tuple[int, int, int]
    weights: tuple[float, ...]


def _halved(n: int, times: int) -> int:
    """Length of an axis of ``n`` samples after ``times`` 2x average-poolings (odd lengths round up)."""
    for _ in range(times):
        n = (n + 1) // 2
    return n


def ms_ssim_plan(shape: tuple[int, int, int], win_size: int = MAX_WINDOW, max_levels: int = 5) -> MsSsimPlan:
    """Number of scales and window per axis for a ``(z, y, x)`` volume.

    Rule: each scale halves every axis (2x2x2 means; an odd axis rounds up). ``levels`` is the
    largest L ≤ 5 for which the two longest axes keep a full window (``win_size`` = 11 samples)
    at the coarsest scale, i.e. their lengths exceed (win_size − 1)·2^(L−1) (pytorch-msssim's
    own condition on (H, W) for L = 5; at least 1 scale). The window along each axis is
    ``win_size``, or the largest odd length that fits that axis at the coarsest scale (a thin z),
    the same at every scale; an axis with fewer than 3 samples there is not smoothed (window 1).
    With L < 5 the first L Wang weights are used, renormalised to sum to 1.
    """
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"ms_ssim needs a 3D shape (z, y, x), got {shape}")
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and at least 3, got {win_size}")
    second_longest = sorted(shape)[1]
    levels = max_levels
    while levels > 1 and _halved(second_longest, levels - 1) < win_size:
        levels -= 1
    windows = []
    for n in shape:
        coarse = _halved(n, levels - 1)
        w = min(win_size, coarse if coarse % 2 else coarse - 1)
        windows.append(w if w >= 3 else 1)
    w = np.asarray(WANG_WEIGHTS[:levels])
    return MsSsimPlan(levels, tuple(windows), tuple((w / w.sum()).tolist()) if levels < 5 else WANG_WEIGHTS)


def _smooth(x: torch.Tensor, kernels: list[torch.Tensor | None]) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of a (C, z, y, x) tensor, one 1D kernel per axis (None: skip)."""
    for axis, k in enumerate(kernels, start=1):
        if k is not None:
            n = x.shape[axis] - k.numel() + 1
            x = sum(k[i] * x.narrow(axis, i, n) for i in range(k.numel()))
    return x


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, kernels, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term of two (z, y, x) tensors (pytorch-msssim's formula)."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu1, mu2, xx, yy, xy = _smooth(torch.stack([x, y, x * x, y * y, x * y]), kernels)
    s11, s22, s12 = xx - mu1 * mu1, yy - mu2 * mu2, xy - mu1 * mu2
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = (2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs_map
    return ssim_map.mean(), cs_map.mean()


def ms_ssim(a, b, data_range: float | None = None, win_size: int = MAX_WINDOW) -> float:
    """3D multi-scale SSIM of ``a`` (test) against ``b`` (reference), both ``(z, y, x)``, in [0, 1].

    ``data_range`` defaults to the reference's max − min. Scales and windows follow
    :func:`ms_ssim_plan` (a Gaussian of σ = 1.5 samples truncated to each axis's window);
    downsampling is a 2x2x2 mean, where an odd axis's first sample is averaged alone
    (pytorch-msssim averages it with a zero pad; for even lengths the two agree). Computed in
    float64; equals ``pytorch_msssim.ms_ssim`` (same ``win_size``) when every axis exceeds
    (win_size − 1)·16 samples and every scale has even lengths.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"ms_ssim needs two 3D volumes of one shape, got {a.shape} and {b.shape}")
    if data_range is None:
        data_range = float(b.max() - b.min()) or 1.0
    plan = ms_ssim_plan(a.shape, win_size)
    kernels = [_fspecial_gauss_1d(w, WINDOW_SIGMA).to(torch.float64).ravel() if w > 1 else None
               for w in plan.windows]
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    terms = []
    for level in range(plan.levels):
        ssim_val, cs = _ssim_cs(x, y, kernels, data_range)
        if level < plan.levels - 1:
            terms.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape]
            x, y = F.avg_pool3d(torch.stack([x, y])[:, None], kernel_size=2, padding=pad,
                                count_include_pad=False)[:, 0]
    terms.append(torch.relu(ssim_val))
    weights = torch.tensor(plan.weights, dtype=torch.float64)
    return float(torch.prod(torch.stack(terms) ** weights))

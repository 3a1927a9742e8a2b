"""Similarity of volumes: Pearson correlation (Eq. 11) and 3D MS-SSIM (pytorch-msssim)."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def pcc(a, b) -> float:
    """Pearson correlation coefficient of two arrays of the same shape (Eq. 11)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"pcc needs equal shapes, got {np.shape(a)} and {np.shape(b)}")
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def ms_ssim_window(shape: tuple[int, ...], levels: int = 5, max_window: int = 11) -> tuple[int, int]:
    """(window, levels) for a ``(z, y, x)`` volume (or a ``(y, x)`` lateral shape).

    Rule: at most as many scales as keep every axis ≥ 1 sample at the coarsest scale (each scale
    halves all axes); then keep those scales and shrink the Gaussian window (odd, 11 → 3) until
    ``min(Y, X) > (window − 1)·2^(levels−1)`` (pytorch-msssim's condition); if even a 3-wide
    window does not fit, drop the coarsest scales. Axes shorter than the window (often z) are not
    smoothed, as pytorch-msssim does.
    """
    side = min(shape[-2:])
    while levels > 1 and min(shape) < 2 ** (levels - 1):
        levels -= 1
    while levels > 1:
        for win in range(max_window, 2, -2):
            if side > (win - 1) * 2 ** (levels - 1):
                return win, levels
        levels -= 1
    return 3, 1


def ms_ssim(a, b, data_range: float | None = None) -> float:
    """3D multi-scale SSIM of ``a`` (test) against ``b`` (reference), both ``(z, y, x)``.

    ``data_range`` defaults to the reference's max − min. Window and number of scales follow
    :func:`ms_ssim_window`; with fewer than 5 scales the first Wang weights are used, renormalised
    to sum to 1 (with 5, the library's weights as they are). Values are computed in float64 by pytorch-msssim.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"ms_ssim needs two 3D volumes of one shape, got {a.shape} and {b.shape}")
    if data_range is None:
        data_range = float(b.max() - b.min()) or 1.0
    win, levels = ms_ssim_window(a.shape)
    weights = list(WANG_WEIGHTS) if levels == 5 else (np.asarray(WANG_WEIGHTS[:levels]) /
                                                      sum(WANG_WEIGHTS[:levels])).tolist()
    x, y = (torch.from_numpy(v)[None, None] for v in (a, b))
    win_1d = _fspecial_gauss_1d(win, 1.5).to(torch.float64).reshape(1, 1, 1, 1, win)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # axes shorter than the window are skipped, as documented
        for i in range(levels):  # pytorch-msssim's own loop, for any number of scales
            ssim_val, cs = _ssim(x, y, win=win_1d, data_range=data_range, size_average=False, K=(0.01, 0.03))
            if i < levels - 1:
                values.append(torch.relu(cs))
                pad = [s % 2 for s in x.shape[2:]]
                x = torch.nn.functional.avg_pool3d(x, kernel_size=2, padding=pad)
                y = torch.nn.functional.avg_pool3d(y, kernel_size=2, padding=pad)
    values.append(torch.relu(ssim_val))
    stack = torch.stack(values).reshape(levels)
    return float(torch.prod(stack ** torch.tensor(weights, dtype=torch.float64)))

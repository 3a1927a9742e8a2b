"""Detector imperfections: which measured pixels a loss may use.

A scan's ``detector_mask (h, w)`` is True at bad pixels (dead, hot, gaps between modules; CXI's
convention, nonzero = bad); ``saturation_level`` (photons) marks counts at or above it as
unreliable in the pattern where they occur. Every loss weights its residuals with
:func:`valid_pixels` (1 = use, 0 = ignore), so bad pixels neither pull the model nor count in
the loss. Negative counts (background subtraction) are clipped to 0 on import.
"""
from __future__ import annotations

import numpy as np
import torch


def valid_pixels(data: torch.Tensor, bad: torch.Tensor | None, saturation_level: float | None) -> torch.Tensor | None:
    """Weights like ``data (..., h, w)``: 0 at bad pixels ``bad (h, w)`` bool and at counts ≥
    ``saturation_level``, else 1; None when every pixel is valid (no mask, no saturation)."""
    w = None
    if bad is not None and bool(bad.any()):
        w = (~bad).to(data.dtype).expand(data.shape)
    if saturation_level is not None:
        below = (data < saturation_level).to(data.dtype)
        w = below if w is None else w * below
    return w


def as_mask_tensor(mask: np.ndarray | None, device) -> torch.Tensor | None:
    """A scan's ``detector_mask`` as a bool tensor on ``device`` (None stays None)."""
    return None if mask is None else torch.as_tensor(np.asarray(mask, bool), device=device)

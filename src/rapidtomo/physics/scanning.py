"""Scan positions: raster and snake patterns of probe-window top-left corners, with jitter, and the
position errors of a real stage."""
from __future__ import annotations

import numpy as np


def _axis(extent: int, window: int, step: int, even: bool) -> np.ndarray:
    last = extent - window
    if last < 0:
        raise ValueError(f"window {window} is larger than the grid {extent}")
    n = max(1, int(np.ceil(last / step)) + 1)
    pts = np.rint(np.linspace(0, last, n)).astype(np.int64)
    if even:
        pts = 2 * (pts // 2)
    return np.unique(pts)


def scan_positions(grid_shape: tuple[int, int], window: tuple[int, int], step_px: tuple[int, int] | int, *,
                   pattern: str = "snake", jitter_px: int = 0, even: bool = True,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Integer top-left corners ``(N, 2)`` covering a ``(H, W)`` slice grid edge to edge.

    Rows and columns are spread evenly with at most ``step_px`` between neighbours (the last
    window touches the far edge). ``pattern``: ``"raster"`` (every row left → right) or
    ``"snake"`` (alternate rows reversed, as in a fly scan). ``jitter_px`` adds uniform random
    offsets in [−j, j] (clipped to the grid); ``even`` keeps corners on even pixels so that the
    positions map exactly onto a 2x coarser grid.
    """
    if pattern not in ("snake", "raster"):
        raise ValueError(f"unknown scan pattern {pattern!r} (raster or snake)")
    sy, sx = (step_px, step_px) if np.isscalar(step_px) else step_px
    rows = _axis(grid_shape[0], window[0], int(sy), even)
    cols = _axis(grid_shape[1], window[1], int(sx), even)
    out = []
    for i, r in enumerate(rows):
        cs = cols[::-1] if (pattern == "snake" and i % 2) else cols
        out.extend((r, c) for c in cs)
    pos = np.asarray(out, dtype=np.int64)
    if jitter_px:
        rng = rng or np.random.default_rng(0)
        pos = pos + rng.integers(-jitter_px, jitter_px + 1, size=pos.shape)
        if even:
            pos = 2 * (pos // 2)
        pos[:, 0] = np.clip(pos[:, 0], 0, grid_shape[0] - window[0])
        pos[:, 1] = np.clip(pos[:, 1], 0, grid_shape[1] - window[1])
    return pos


def position_errors(shape: tuple[int, int], rms_px: float, drift_px: float, rng: np.random.Generator) -> np.ndarray:
    """Errors ``(n_angles, n_pos, 2)`` (pixels, row and col) of the true positions from the nominal ones.

    Per axis: independent Gaussian errors of rms ``rms_px`` plus a slow drift along the
    acquisition order of each angle (a random walk, its mean removed, scaled to rms ``drift_px``).
    Zero settings give zeros without drawing from ``rng``.
    """
    out = np.zeros(tuple(shape) + (2,))
    if rms_px > 0:
        out += rng.normal(scale=rms_px, size=out.shape)
    if drift_px > 0 and shape[1] > 1:
        walk = np.cumsum(rng.normal(size=out.shape), axis=1)
        walk -= walk.mean(axis=1, keepdims=True)
        out += drift_px * walk / np.sqrt(np.mean(walk**2, axis=1, keepdims=True))
    return out

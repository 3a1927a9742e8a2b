"""Post-processing of phase projections: unwrapping, offset/ramp removal, alignment, ideal projections."""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import shift as nd_shift
from skimage.registration import phase_cross_correlation
from skimage.restoration import unwrap_phase

from ..io import Volume
from ..physics.geometry import BeamGrid
from ..physics.rotation import project


def ideal_projections(phantom: Volume, angles_deg, grid: BeamGrid) -> np.ndarray:
    """PROJECTION-APPROXIMATION SHORTCUT for simulations: line integrals of the phantom's phase.

    ``(n_angles, Y, width)`` radians, no diffraction and no ptychography: tomography can be
    tested apart from ptychography. Not a reconstruction from data.
    """
    v = torch.as_tensor(np.asarray(phantom.data), dtype=torch.float64)
    return project(v, np.deg2rad(np.asarray(angles_deg)), grid).numpy().astype(np.float32)


def unwrap_if_wrapped(phase: np.ndarray) -> np.ndarray:
    """Unwrap a 2D phase map (scikit-image) when neighbouring pixels jump by more than π."""
    jumps = max(np.abs(np.diff(phase, axis=0)).max(initial=0), np.abs(np.diff(phase, axis=1)).max(initial=0))
    return unwrap_phase(phase) if jumps > np.pi else phase


def empty_mask(lit: np.ndarray, band_fraction: float = 0.05) -> np.ndarray:
    """Pixels assumed empty (air): well-lit pixels in the outer ``band_fraction`` of the lit columns."""
    good = lit > 0.2 * lit.max()
    cols = np.flatnonzero(good.any(0))
    if len(cols) == 0:
        return good
    band = max(1, int(band_fraction * (cols[-1] - cols[0] + 1)))
    m = np.zeros_like(good)
    m[:, cols[0]:cols[0] + band] = True
    m[:, cols[-1] - band + 1:cols[-1] + 1] = True
    return m & good


def remove_offset_and_ramp(phase: np.ndarray, empty: np.ndarray, ramp: bool = True) -> np.ndarray:
    """Subtract a plane ``a + b·y + c·x`` (or the offset ``a`` alone) fitted on the ``empty`` pixels."""
    if not empty.any():
        return phase
    yy, xx = np.nonzero(empty)
    A = np.stack([np.ones_like(yy), yy, xx], 1).astype(np.float64) if ramp else np.ones((len(yy), 1))
    coef, *_ = np.linalg.lstsq(A, phase[empty].astype(np.float64), rcond=None)
    Y, X = np.indices(phase.shape)
    plane = coef[0] + (coef[1] * Y + coef[2] * X if ramp else 0)
    return (phase - plane).astype(phase.dtype)


def shift_projections(projections: np.ndarray, shifts_px: np.ndarray) -> np.ndarray:
    """Shift each projection ``(n, Y, W)`` by ``shifts_px (n, 2)`` (y, x) pixels (linear, zero fill).

    Used to misalign ideal projections by known amounts in tests, and to apply alignment.
    """
    return np.stack([nd_shift(p, s, order=1, mode="constant") for p, s in zip(projections, shifts_px)])


def align_projections(projections: np.ndarray, angles_deg, volume_shape, voxel_size_m, grid: BeamGrid,
                      iterations: int = 3, upsample: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Reprojection alignment: reconstruct (SART), reproject, cross-correlate, shift; repeat.

    Returns aligned projections and the total shifts ``(n_angles, 2)`` (y, x) in pixels that
    were applied (the negative of the misalignment).
    """
    from .tomography import sart
    P = np.asarray(projections, np.float32)
    total = np.zeros((len(P), 2))
    for _ in range(iterations):
        vol = sart(P, angles_deg, volume_shape, voxel_size_m, sweeps=3, show_progress=False)
        re = project(torch.as_tensor(vol, dtype=torch.float64), np.deg2rad(np.asarray(angles_deg)), grid).numpy()
        step = np.array([phase_cross_correlation(r, p, upsample_factor=upsample, normalization=None)[0]
                         for r, p in zip(re, P)])
        step -= step.mean(0)  # a common shift is the sample's position, not a misalignment
        P = shift_projections(P, step)
        total += step
        if np.abs(step).max() < 0.1:
            break
    return P, total

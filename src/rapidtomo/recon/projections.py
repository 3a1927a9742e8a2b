"""Post-processing of phase projections: unwrapping, offset/ramp removal; ideal projections for tests."""
from __future__ import annotations

import numpy as np
import torch
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

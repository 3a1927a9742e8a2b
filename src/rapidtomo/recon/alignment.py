"""Alignment of phase projections before tomography: a sample that drifts, an off-centre rotation axis.

A sample displaced across the beam by ``s(θ) = (s_y, s_x')`` at angle θ (drift, the rotation axis
``a`` pixels off the scan's centre) appears shifted by ``s`` in that projection. Projections
``(n_angles, H, W)`` on the ptychography's slice grid (the volume's Y rows centred, axis at column
``(W − 1)/2``, the whole sample inside the field with air around it) are aligned by
:func:`align_projections`: phase-ramp removal on the air around the sample, the windowed centre
of mass, vertical mass profiles (the row sums do not depend on θ), then iterative reprojection
(reconstruct, reproject, register each projection to its reprojection along x', repeat).

What the projections fix (docs/reconstruction.md): a translation of the sample by ``(tz, ty, tx)``
shifts projection θ by ``ty`` and ``tx·cosθ + tz·sinθ``, and every aligned set can absorb it (the
sample then sits elsewhere in the volume); so after every step those parts are removed
(:func:`~rapidtomo.physics.geometry.split_sample_shifts`), which leaves the sample at its mean
place. What remains of ``s_x'`` is the axis offset (the part common to all angles: the rotation
centre found) plus a drift orthogonal to 1, cosθ and sinθ: a drift's mean x' and an axis offset
are the same thing in the data, and are reported as the axis offset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import shift as nd_shift

from ..physics.geometry import BeamGrid, split_sample_shifts
from ..physics.rotation import project
from ..progress import progress
from .projections import remove_offset_and_ramp


def shift_projections(projections: np.ndarray, shifts_px: np.ndarray) -> np.ndarray:
    """Move the content of each projection ``(n, H, W)`` by ``shifts_px (n, 2)`` (y, x) pixels.

    Cubic-spline interpolation, zero outside; used to undo a found sample shift (``−s``) and to
    misalign projections by known amounts in tests.
    """
    return np.stack([nd_shift(np.asarray(p, np.float64), s, order=3, mode="grid-constant").astype(np.float32)
                     for p, s in zip(projections, np.asarray(shifts_px, np.float64))])


def displacement_px(reference: np.ndarray, moving: np.ndarray, max_px: float, upsample: int = 50) -> float:
    """Where ``moving``'s content sits along the last axis relative to ``reference``'s (pixels).

    Cross-correlation of the two images' derivatives along that axis (a residual phase offset or
    ramp does not pull it), summed over the other axes; the peak is searched within ``±max_px``
    (a periodic structure has other peaks further out) and refined to 1/``upsample`` pixel on the
    correlation's band-limited (DFT) interpolant.
    """
    r = np.diff(np.asarray(reference, np.float64), axis=-1).reshape(-1, np.shape(reference)[-1] - 1)
    m = np.diff(np.asarray(moving, np.float64), axis=-1).reshape(r.shape)
    n = 2 * r.shape[1]  # zero-padded: no wrap-around
    X = (np.conj(np.fft.fft(r, n)) * np.fft.fft(m, n)).sum(0)  # cc[k] = Σ r(x)·m(x + k) = ifft(X)
    freq = np.fft.fftfreq(n)

    def cc(lags):
        return (np.exp(2j * np.pi * np.outer(lags, freq)) @ X).real

    k = min(max_px, r.shape[1] / 2)
    coarse = np.arange(-np.floor(k), np.floor(k) + 1)
    best = coarse[np.argmax(cc(coarse))]
    fine = best + np.arange(-upsample, upsample + 1) / upsample
    fine = fine[np.abs(fine) <= k]
    return float(fine[np.argmax(cc(fine))])


def footprint_window(angles_deg, volume_shape, voxel_size_m, shape: tuple[int, int], margin_px: float,
                     taper_px: float = 2.0) -> np.ndarray:
    """Where the sample can be in each aligned projection ``(n, H, W)``: 1 on the volume box's shadow
    widened by ``margin_px``, falling linearly to 0 over ``taper_px`` (noise and background outside)."""
    Z, Y, X = volume_shape
    dz, _, dx = voxel_size_m
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    half_x = (X * np.abs(np.cos(th)) + Z * dz / dx * np.abs(np.sin(th))) / 2 + margin_px
    H, W = shape
    x = np.abs(np.arange(W) - (W - 1) / 2)
    y = np.abs(np.arange(H) - (H - 1) / 2)
    wx = np.clip((half_x[:, None] - x[None]) / taper_px + 0.5, 0, 1)
    wy = np.clip((Y / 2 + margin_px - y) / taper_px + 0.5, 0, 1)
    return (wy[None, :, None] * wx[:, None, :]).astype(np.float32)


def centre_of_mass_px(projections: np.ndarray) -> np.ndarray:
    """Each projection's centre of mass ``(n, 2)`` (y, x') in pixels from the grid's centre."""
    P = np.asarray(projections, np.float64)
    rows = np.arange(P.shape[1]) - (P.shape[1] - 1) / 2
    cols = np.arange(P.shape[2]) - (P.shape[2] - 1) / 2
    mass = P.sum((1, 2))
    com = np.stack([P.sum(2) @ rows, P.sum(1) @ cols], 1)
    return np.divide(com, mass[:, None], out=np.zeros_like(com), where=np.abs(mass[:, None]) > 0)


def without_translation(shifts_px: np.ndarray, angles_deg) -> np.ndarray:
    """Shifts ``(n, 2)`` less the part a translation of the sample makes: the axis offset plus the drift."""
    parts = split_sample_shifts(shifts_px, angles_deg)
    return parts.drift + np.array([0.0, parts.axis_offset])


@dataclass
class Alignment:
    """What :func:`align_projections` found.

    ``shift_px (n_angles, 2)``: the sample's shift (y, x') in each projection, drift plus axis
    offset, without a translation of the sample (pixels of the slice grid); ``axis_offset_px``:
    the part of x' common to every angle, the rotation centre's offset from the scan's centre;
    ``iterations`` of reprojection and the largest x' step of the last one.
    """

    shift_px: np.ndarray
    axis_offset_px: float
    iterations: int
    last_step_px: float

    def errors_px(self, true_shift_px: np.ndarray, angles_deg) -> dict[str, float]:
        """RMS error against known shifts ``(n, 2)``, up to a translation of the sample: y, x' and both."""
        e = without_translation(self.shift_px - np.asarray(true_shift_px), angles_deg)
        return {"y": float(np.sqrt(np.mean(e[:, 0] ** 2))), "x": float(np.sqrt(np.mean(e[:, 1] ** 2))),
                "rms": float(np.sqrt(np.mean(e ** 2)))}


def align_projections(projections: np.ndarray, angles_deg, volume_shape, voxel_size_m, grid: BeamGrid,
                      illumination: np.ndarray | None = None, iterations: int = 10, tolerance_px: float = 0.05,
                      margin_px: float = 4.0, max_step_px: float = 2.0,
                      show_progress: bool = True) -> tuple[np.ndarray, Alignment]:
    """Align ``projections (n, H, W)`` on ``grid``'s slice grid; returns ``(aligned (n, Y, W), Alignment)``.

    Steps: phase-ramp removal (a plane fitted on the well-lit air outside the sample's window,
    :func:`footprint_window` at its current place; ``illumination (n, H, W)`` or ``(H, W)`` says
    how well each pixel is lit, default: everywhere the projection is not 0; the offset alone where
    that air is under 5 % of the well-lit pixels), the windowed centre of mass (5 rounds of at
    most ``max_step_px``, the window and the air following it), vertical mass profiles (3 rounds),
    then reprojection at most ``iterations`` times (SART, 3 sweeps), stopping when no x' step
    exceeds ``tolerance_px``; a registration moves a projection by at most ``max_step_px`` per
    round (:func:`displacement_px`). ``aligned`` is the projections, ramps removed, moved by
    ``−shift``, cut to the window and to the volume's Y central rows, ready for
    :func:`rapidtomo.recon.tomography.reconstruct`.
    """
    from .tomography import sart
    P = np.asarray(projections, np.float32)
    n, H, W = P.shape
    Y = int(volume_shape[1])
    if (H, W) != grid.slice_shape:
        raise ValueError(f"projections are {H}x{W}, but the slice grid is {grid.height}x{grid.width}")
    if n < 4:
        raise ValueError(f"alignment needs at least 4 angles (a translation of the sample takes 3), got {n}")
    lit = P != 0 if illumination is None else np.broadcast_to(illumination, P.shape)
    well_lit = np.stack([li > 0.2 * li.max() for li in lit])
    top = (H - Y) // 2
    thetas = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    window = footprint_window(angles_deg, volume_shape, voxel_size_m, (H, W), margin_px)

    def aligned(s):
        air = (shift_projections(window, s) < 1e-3) & well_lit
        # a plane needs air around the sample; with little of it, only the offset
        flat = np.stack([remove_offset_and_ramp(p, e, ramp=e.sum() >= 0.05 * g.sum())
                         for p, e, g in zip(P, air, well_lit)])
        return shift_projections(flat, -s) * window

    s = np.zeros((n, 2))
    for _ in range(5):  # the window follows the sample's centre of mass
        step = np.clip(centre_of_mass_px(aligned(s)), -max_step_px, max_step_px)
        s = without_translation(s + step, angles_deg)
    for _ in range(3):  # mass profiles (row sums), registered to their mean
        profiles = aligned(s).sum(2)
        ref = profiles.mean(0)
        s[:, 0] += [displacement_px(ref, p, max_step_px) for p in profiles]
        s = without_translation(s, angles_deg)
    steps = range(iterations)
    if show_progress:
        steps = progress(steps, desc="alignment", total=iterations, unit="iter")
    done, largest = 0, float("nan")
    for _ in steps:
        A = aligned(s)[:, top:top + Y]
        vol = sart(A, angles_deg, volume_shape, voxel_size_m, sweeps=3, show_progress=False)
        re = project(torch.as_tensor(vol, dtype=torch.float64), thetas, grid).numpy()
        step = np.array([displacement_px(r, a, max_step_px) for r, a in zip(re, A)])
        s[:, 1] += step
        s = without_translation(s, angles_deg)
        done, largest = done + 1, float(np.abs(step).max())
        if largest < tolerance_px:
            break
    parts = split_sample_shifts(s, angles_deg)
    return aligned(s)[:, top:top + Y], Alignment(s, parts.axis_offset, done, largest)

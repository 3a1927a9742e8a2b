"""The simulator's reference forward model: finer than, and independent of, every reconstruction model.

A reconstruction that shares the simulator's discretisation commits the "inverse crime" and looks
better than it would on real data. This model differs from the reconstruction operator
(:mod:`rapidtomo.physics.operator`: bilinear rotation at the voxel pitch, L slabs, an n × n window)
in every discretisation choice:

- **Object**: the phantom's cubic B-spline interpolant (zero outside the volume), evaluated on a
  grid 2x finer than the volume in y and in x' (pixel dx/2) and, along the beam, at steps of
  ``min(dz, dx)/2`` (midpoint rule for the line integrals through each slab). The spline
  coefficients come from :func:`scipy.ndimage.spline_filter` once per volume; the rotation about y
  is a sparse matrix of 4 × 4 cubic B-spline taps in the z–x plane per angle, applied to every y
  row at once.
- **Slabs**: thickness ``k · min(dz, dx)/2`` chosen by :func:`converged_slab_samples` so that
  halving it changes the sample's part of the patterns (``I − I_air``) by less than a tolerance
  (1e-3 relative by default; stricter than 1e-3 of the patterns), independent of any
  reconstruction's L; slabs span the sample's extent along the beam at that angle; the
  transmission of a slab sits at its centre (midpoint splitting).
- **Far field**: the 2x finer pixel doubles the far-field window (2n × 2n at the same Δq); the
  detector sees its central n × n. The probe is resampled exactly (its spectrum zero-padded), so
  an object smooth on the coarse grid gives the coarse model's patterns.
- **Probe plane**: the probe is given at the plane through the rotation axis (b = 0) and
  propagated (angular spectrum) to the first slab's centre at each angle.
- **Sample shifts**: a sample displaced across the beam by ``(y, x')`` at an angle (drift, an
  offset rotation axis) is the same spline evaluated at the shifted points, exact for any fraction
  of a pixel; the probe positions stay the nominal ones.

Conventions: volumes ``(z, y, x)`` of phase per voxel (radians) as in docs/conventions.md; the beam
frame ``x' = x·cosθ + z·sinθ``, ``b = −x·sinθ + z·cosθ``; positions are top-left corners (pixels,
fractional allowed) on the coarse slice grid of :func:`rapidtomo.physics.geometry.beam_grid`; on
the fine grid they are ``OVERSAMPLING ×`` those, cut at the nearest fine pixel with the fine probe
moved by the fine grid's fractional part (the multislice model's Fourier shift).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch
from scipy.ndimage import spline_filter

from . import operator
from .geometry import BeamGrid
from .multislice import forward_intensity, propagate

#: the fine grid's refinement in y, x' and along the beam
OVERSAMPLING = 2
#: zero voxels around the volume before spline filtering: the coefficients decay by 0.27 per voxel
#: away from the data, so 8 voxels leave < 3e-5 of an edge's value outside
_PAD = 8


def cubic_bspline_weights(t: np.ndarray) -> np.ndarray:
    """Cubic B-spline weights ``(4, ...)`` of the taps at offsets −1, 0, 1, 2 for fractions ``t ∈ [0, 1)``."""
    return np.stack([(1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
                     t**3 / 6])


def upsample_probe(probe: np.ndarray, factor: int = OVERSAMPLING) -> np.ndarray:
    """The probe on a ``factor``x finer grid, spectrum zero-padded: ``(M, n, n) → (M, f·n, f·n)``.

    ``fft2`` of the result is ``fft2(probe)`` embedded at the centre of the larger spectrum
    (unnormalised FFTs), so the far field's central n × n is unchanged; fine sample ``f·j`` lies on
    coarse sample ``j``.
    """
    n = probe.shape[-1]
    F = np.fft.fftshift(np.fft.fft2(probe), axes=(-2, -1))
    m = factor * n
    out = np.zeros(probe.shape[:-2] + (m, m), dtype=np.complex128)
    lo = m // 2 - n // 2
    out[..., lo:lo + n, lo:lo + n] = F
    return np.fft.ifft2(np.fft.ifftshift(out, axes=(-2, -1)))


@dataclass(frozen=True)
class FineVolume:
    """Cubic B-spline coefficients of a volume zero-padded by ``_PAD``: ``coef (Yp, Zp·Xp)`` float32.

    y comes first: the fine rows are evaluated per angle (:func:`fine_rows`), at the sample's
    vertical position of that angle.
    """

    coef: np.ndarray
    padded_shape: tuple[int, int, int]


def spline_volume(volume: np.ndarray) -> FineVolume:
    """Spline coefficients of ``volume (Z, Y, X)`` (phase or attenuation per voxel) for :func:`slab_phases`."""
    c = spline_filter(np.pad(np.asarray(volume, np.float64), _PAD), order=3, mode="mirror")
    Zp, Yp, Xp = c.shape
    return FineVolume(np.ascontiguousarray(c.transpose(1, 0, 2).reshape(Yp, Zp * Xp), np.float32), (Zp, Yp, Xp))


def fine_rows(vol: FineVolume, grid: BeamGrid, shift_y_px: float = 0.0) -> tuple[np.ndarray, int]:
    """The z–x planes ``(Zp·Xp, rows)`` of the fine rows within the spline's reach of the volume, and the first
    one's index on the fine slice grid (fine row k at coarse row ``k / OVERSAMPLING``); the other rows are air.

    ``shift_y_px``: the sample's displacement along y (coarse pixels; + moves it to higher rows).
    """
    f = OVERSAMPLING
    Y = grid.volume_shape[1]
    # fine row k of the slice grid sits at coarse row k/f, i.e. at volume row k/f − (height − Y)/2 − shift
    first = (grid.height - Y) / 2 + shift_y_px
    k = np.arange(f * grid.height)
    k = k[np.abs(k / f - first - (Y - 1) / 2) < Y / 2 + 2]
    if not len(k):
        return np.zeros((vol.coef.shape[1], 0), np.float32), 0
    Uy = _taps_matrix(k / f - first + _PAD, vol.padded_shape[1])  # (rows, Yp)
    return np.ascontiguousarray((Uy @ vol.coef).T, np.float32), int(k[0])


def _taps_matrix(coords: np.ndarray, size: int) -> scipy.sparse.csr_matrix:
    """Sparse ``(len(coords), size)`` matrix of 1D cubic B-spline taps at fractional indices ``coords``."""
    i0 = np.floor(coords)
    w = cubic_bspline_weights(coords - i0)
    idx = i0[None] + np.arange(-1, 3)[:, None]
    ok = (idx >= 0) & (idx < size)
    rows = np.broadcast_to(np.arange(len(coords)), idx.shape)
    return scipy.sparse.csr_matrix((w[ok], (rows[ok], idx[ok].astype(np.int64))), shape=(len(coords), size))


@dataclass(frozen=True)
class FineSlabs:
    """Slab sampling of one angle: ``n_slabs`` slabs of ``thickness_m``, the first centred at ``first_center_m``."""

    n_slabs: int
    thickness_m: float
    first_center_m: float


def beam_step_m(grid: BeamGrid) -> float:
    """The fine step along the beam, ``min(dz, dx) / OVERSAMPLING`` (m)."""
    dz, _, dx = grid.voxel_size_m
    return min(dz, dx) / OVERSAMPLING


@dataclass(frozen=True)
class SlabProjector:
    """The sparse map ``R (L·f·width, Zp·Xp)`` from a fine volume's z–x spline coefficients to the slab
    line integrals of one angle (radians per unit coefficient), shared by phase and attenuation."""

    matrix: scipy.sparse.csr_matrix
    slabs: FineSlabs
    grid: BeamGrid
    shift_px: tuple[float, float]

    def __call__(self, vol: FineVolume) -> np.ndarray:
        """Slab line integrals ``(L, f·height, f·width)`` of ``vol`` (radians)."""
        f, W = OVERSAMPLING, OVERSAMPLING * self.grid.width
        L = self.slabs.n_slabs
        phases = np.zeros((L, f * self.grid.height, W))
        coef, first = fine_rows(vol, self.grid, self.shift_px[0])
        rows = coef.shape[1]
        phases[:, first:first + rows] = (self.matrix @ coef).reshape(L, W, rows).transpose(0, 2, 1)
        return phases


def slab_projector(padded_shape: tuple[int, int, int], theta_rad: float, grid: BeamGrid, samples_per_slab: int,
                   shift_px: tuple[float, float] = (0.0, 0.0)) -> SlabProjector:
    """The slab projection at angle θ of fine volumes of ``padded_shape`` (:attr:`FineVolume.padded_shape`).

    The beam range is the sample's extent along the beam at θ plus the spline's support, in whole
    slabs of ``samples_per_slab`` fine beam steps. ``shift_px (y, x')``: the sample displaced across
    the beam (coarse pixels, any fraction: the spline is evaluated at the shifted points).
    """
    f = OVERSAMPLING
    Z, _, X = grid.volume_shape
    dz, _, dx = grid.voxel_size_m
    db = beam_step_m(grid)
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    hz, hx = (Z + 1) * dz / 2, (X + 1) * dx / 2
    half = abs(hz * c) + abs(hx * s) + 2 * max(dz, dx)
    L = max(1, math.ceil(2 * half / (db * samples_per_slab)))
    nb = L * samples_per_slab
    b = (np.arange(nb) + 0.5 - nb / 2) * db
    W = f * grid.width
    xp = (np.arange(W) / f - (grid.width - 1) / 2 - shift_px[1]) * dx
    B, XP = np.meshgrid(b, xp, indexing="ij")
    fz = (XP * s + B * c) / dz + (Z - 1) / 2 + _PAD
    fx = (XP * c - B * s) / dx + (X - 1) / 2 + _PAD
    Zp, _, Xp = padded_shape
    inside = (fz >= 1) & (fz < Zp - 2) & (fx >= 1) & (fx < Xp - 2)
    fz, fx = fz[inside], fx[inside]
    row = ((np.arange(nb) // samples_per_slab)[:, None] * W + np.arange(W)[None, :])
    row = np.broadcast_to(row, inside.shape)[inside]
    z0, x0 = np.floor(fz).astype(np.int64), np.floor(fx).astype(np.int64)
    wz, wx = cubic_bspline_weights(fz - z0), cubic_bspline_weights(fx - x0)
    taps = np.arange(-1, 3)
    cols = ((z0[None, None] + taps[:, None, None]) * Xp + (x0[None, None] + taps[None, :, None])).ravel()
    vals = (wz[:, None] * wx[None, :] * (db / dz)).ravel()
    rows = np.broadcast_to(row, (4, 4, len(row))).ravel()
    R = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(L * W, Zp * Xp))
    thickness = samples_per_slab * db
    return SlabProjector(R, FineSlabs(L, thickness, -nb * db / 2 + thickness / 2), grid, tuple(shift_px))


def slab_phases(vol: FineVolume, theta_rad: float, grid: BeamGrid, samples_per_slab: int,
                shift_px: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, FineSlabs]:
    """Slab line integrals ``(L, f·height, f·width)`` (radians) of the fine volume at angle θ and their
    slabs (:func:`slab_projector` says how)."""
    project = slab_projector(vol.padded_shape, theta_rad, grid, samples_per_slab, shift_px)
    return project(vol), project.slabs


def angle_intensities(phase: FineVolume, attenuation: FineVolume | None, theta_rad: float, grid: BeamGrid,
                      fine_probe: np.ndarray, top_left: np.ndarray, wavelength_m: float, samples_per_slab: int,
                      backend: str | None = None, shift_px: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Detector intensities ``(N, n, n)`` float32 of one angle (the reference model, noiseless).

    ``fine_probe (M, f·n, f·n)`` from :func:`upsample_probe`, given at the plane b = 0;
    ``top_left (N, 2)`` corners (pixels, fractional allowed) on the coarse slice grid; ``shift_px (y, x')``
    the sample's displacement across the beam at this angle (coarse pixels; drift, rotation-axis offset).
    """
    f = OVERSAMPLING
    project = slab_projector(phase.padded_shape, theta_rad, grid, samples_per_slab, shift_px)
    slabs = project.slabs
    t = transmission(project(phase), None if attenuation is None else project(attenuation))
    pixel = grid.pixel_m / f
    probe = propagate(fine_probe.astype(np.complex64), slabs.first_center_m, wavelength_m=wavelength_m,
                      pixel_size_m=pixel)
    I = forward_intensity(t, probe, f * np.asarray(top_left), wavelength_m=wavelength_m, pixel_size_m=pixel,
                          slice_spacing_m=slabs.thickness_m, backend=backend)
    n = fine_probe.shape[-1] // f
    lo = (f * n - n) // 2
    return I[:, lo:lo + n, lo:lo + n]


def transmission(phase: np.ndarray, attenuation: np.ndarray | None) -> np.ndarray:
    """Complex64 transmission of slabs of ``phase`` and ``attenuation`` (the operator's sign convention)."""
    mu = None if attenuation is None else torch.from_numpy(np.asarray(attenuation, np.float32))
    return operator.transmission(torch.from_numpy(phase.astype(np.float32)), mu).numpy()


def converged_slab_samples(phase: FineVolume, attenuation: FineVolume | None, thetas_rad, grid: BeamGrid,
                           fine_probe: np.ndarray, top_left: np.ndarray, wavelength_m: float,
                           tolerance: float = 1e-3, start: int = 64) -> tuple[int, float]:
    """Fine beam steps per slab such that halving the slabs changes the sample's signal by < ``tolerance``.

    The sample's signal is ``I − I_air`` (patterns minus those of empty space). Starting at
    ``start`` steps per slab, halve k until ``‖I(k) − I(k/2)‖ / ‖I(k/2) − I_air‖ < tolerance`` at
    every angle of ``thetas_rad`` on the positions ``top_left``; returns ``(k, the largest such
    change)``, or ``(1, change at 2 → 1)`` if it is never reached.
    """
    air = FineVolume(np.zeros_like(phase.coef), phase.padded_shape)

    def patterns(vol, att, k):
        return [angle_intensities(vol, att, th, grid, fine_probe, top_left, wavelength_m, k) for th in thetas_rad]

    free = patterns(air, None, start)
    k, cur, change = start, patterns(phase, attenuation, start), float("nan")
    while k > 1:
        finer = patterns(phase, attenuation, k // 2)
        change = max(float(np.linalg.norm(a - b) / np.linalg.norm(b - f)) for a, b, f in zip(cur, finer, free))
        if change < tolerance:
            return k, change
        k, cur = k // 2, finer
    return 1, change

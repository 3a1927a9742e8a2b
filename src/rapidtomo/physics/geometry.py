"""Units and the geometry that ties detector, object grid, rotation and slices together.

Conventions (docs/conventions.md): SI units; volumes are ``(z, y, x)`` with z along the beam at
θ = 0 and y the rotation axis. The *beam grid* of an angle is the volume rotated about y and
resampled onto samples ``(b, y, x')`` aligned with the beam (b along the beam). Positions are the
probe-window centre ``(y, x')`` in metres relative to the rotation axis (x' = 0) and the volume's
mid-height (y = 0). The axis sits at the continuous index ``(n - 1) / 2`` of every grid.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

PLANCK_EV_S = 4.135667696e-15
SPEED_OF_LIGHT_M_S = 299792458.0


def wavelength_m(energy_kev: float) -> float:
    """λ = h·c / E for a photon energy in keV (8.8 keV → 1.409e-10 m)."""
    return PLANCK_EV_S * SPEED_OF_LIGHT_M_S / (energy_kev * 1e3)


def object_pixel_size_m(energy_kev: float, detector_distance_m: float, detector_pixel_m: float,
                        n_detector: int) -> float:
    """Far-field object-plane pixel λ·z / (n·p) (paper: 8.8 keV, 1.92 m, 75 µm, 256 → 14.1 nm)."""
    return wavelength_m(energy_kev) * detector_distance_m / (n_detector * detector_pixel_m)


def detector_distance_for_pixel(energy_kev: float, pixel_m: float, detector_pixel_m: float,
                                n_detector: int) -> float:
    """The detector distance that gives an object pixel ``pixel_m`` (inverse of the above)."""
    return pixel_m * n_detector * detector_pixel_m / wavelength_m(energy_kev)


def angle_set_deg(n: int, theta_max_deg: float) -> np.ndarray:
    """N uniformly spaced angles over the symmetric range [-θmax/2, +θmax/2] (N = 1 → [0])."""
    if n < 1:
        raise ValueError(f"number of angles must be ≥ 1, got {n}")
    if n == 1:
        return np.zeros(1)
    return np.linspace(-theta_max_deg / 2, theta_max_deg / 2, n)


def _smallest_at_least(lo: float, ok) -> int:
    n = max(1, math.ceil(lo - 1e-9))
    while not ok(n):
        n += 1
    return n


class BeamSampling(NamedTuple):
    """Samples along the beam at one angle and their share of each slab.

    ``n_beam`` samples ``step_m`` apart, centred on the rotation axis; sample k's phase goes to
    slabs ``slab_index[:, k]`` (2, n_beam) with weights ``slab_weight[:, k]`` (2, n_beam) that add
    up to 1 (the part of the sample's interval inside each slab).
    """

    n_beam: int
    step_m: float
    slab_index: np.ndarray
    slab_weight: np.ndarray


@dataclass(frozen=True)
class BeamGrid:
    """Sampling of the rotated volume and of the multislice slices for one volume grid.

    Slices of ``(height, width)`` pixels of ``pixel_m`` (= the volume's dy = dx), with the
    volume centred, wide enough for every angle. Along the beam the L = ``n_slabs`` slabs follow
    the sample: at angle θ they split the support's extent along the beam, :meth:`extent_m`, into
    L equal slabs (:meth:`slab_thickness_m`, the multislice Δz of that angle) that share out the
    beam samples (:meth:`beam_sampling`).
    """

    volume_shape: tuple[int, int, int]
    voxel_size_m: tuple[float, float, float]
    n_slabs: int
    height: int
    width: int

    @property
    def pixel_m(self) -> float:
        return self.voxel_size_m[2]

    def extent_m(self, theta_rad: float) -> float:
        """Extent along the beam of the support at θ: the volume's box ``Z·dz × X·dx`` projected,
        ``|Z·dz·cosθ| + |X·dx·sinθ|`` (the operator must not depend on the volume's values)."""
        Z, _, X = self.volume_shape
        dz, _, dx = self.voxel_size_m
        return abs(Z * dz * math.cos(theta_rad)) + abs(X * dx * math.sin(theta_rad))

    def beam_sampling(self, theta_rad: float) -> BeamSampling:
        """The samples along the beam at θ and their slabs (see :class:`BeamSampling`).

        The extent is cut into ``n`` equal intervals, ``n`` the fewest whose step moves at most one
        voxel along z and along x (at least L); each slab takes the part of every interval inside
        it, so the sampling, and the slab phases' sum, do not depend on L (at θ = 0 with Z = L,
        slab l is z-sample l). The bilinear interpolant of the volume reaches half a voxel beyond
        the box: samples continue at the same step into that fringe and count in the first and
        last slab, so that the slabs add up to the whole line integral.
        """
        c, s = abs(math.cos(theta_rad)), abs(math.sin(theta_rad))
        dz, _, dx = self.voxel_size_m
        max_step = min(dz / c if c > 1e-12 else math.inf, dx / s if s > 1e-12 else math.inf)
        extent = self.extent_m(theta_rad)
        L = self.n_slabs
        n = max(L, math.ceil(extent / max_step - 1e-9))
        step = extent / n
        n_tail = max(0, math.ceil((dz * c + dx * s) / 2 / step + 0.5 - 1e-9) - 1)  # (j − ½)·step < fringe
        k = np.arange(-n_tail, n + n_tail)
        u0, u1 = np.clip(k * L / n, 0, L), np.clip((k + 1) * L / n, 0, L)  # interval in slab units
        first = np.minimum(np.floor(u0), L - 1)
        second = np.minimum(first + 1, L - 1)
        w_first = np.where(u1 > u0, (np.minimum(first + 1, u1) - u0) / np.maximum(u1 - u0, 1e-300), 1.0)
        return BeamSampling(len(k), step, np.stack([first, second]).astype(np.int64),
                            np.stack([w_first, 1 - w_first]))

    def slab_thickness_m(self, theta_rad: float) -> float:
        """Distance between consecutive slices at θ (the multislice Δz): the extent / L."""
        return self.extent_m(theta_rad) / self.n_slabs

    def first_slab_m(self, theta_rad: float) -> float:
        """Position along the beam of the first slab's centre at θ, relative to the rotation axis
        (b = 0), ``−(extent − Δz)/2`` ≤ 0: where the multislice applies its first transmission, and
        so the plane to which the probe, given at b = 0, is propagated."""
        return -(self.extent_m(theta_rad) - self.slab_thickness_m(theta_rad)) / 2

    @property
    def slice_shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def top_left(self, positions_m: np.ndarray, window: tuple[int, int]) -> np.ndarray:
        """Top-left corners ``(..., 2)`` float64 (row, col pixels) of windows centred at ``positions_m (..., 2)``.

        Not rounded: a position between pixels gives a fractional corner (the multislice model
        moves the probe by the fraction); corners within 1e-6 pixel of an integer are snapped to it
        (positions made on the grid stay exact integers). Raises if a window would leave the slice
        grid (the corner rounded to the nearest pixel).
        """
        pos = np.asarray(positions_m, dtype=np.float64) / self.pixel_m
        h, w = window
        top = np.stack([pos[..., 0] + (self.height - h) / 2, pos[..., 1] + (self.width - w) / 2], -1)
        near = np.rint(top)
        top = np.where(np.abs(top - near) < 1e-6, near, top)
        if top.size and (near.min() < 0 or np.any(near[..., 0] > self.height - h)
                         or np.any(near[..., 1] > self.width - w)):
            raise ValueError(f"scan positions leave the {self.height}x{self.width} slice grid "
                             f"(window {h}x{w}); positions span {pos.min(axis=tuple(range(pos.ndim - 1)))}"
                             f"..{pos.max(axis=tuple(range(pos.ndim - 1)))} px")
        return top

    def covering(self, positions_m: np.ndarray, window: tuple[int, int]) -> "BeamGrid":
        """This grid, grown in 2-pixel steps (parities kept) until every window at ``positions_m`` fits."""
        pos = np.abs(np.asarray(positions_m, dtype=np.float64).reshape(-1, 2)) / self.pixel_m
        h, w = self.height, self.width
        if len(pos):
            while h < 2 * pos[:, 0].max() + window[0] - 1e-6:
                h += 2
            while w < 2 * pos[:, 1].max() + window[1] - 1e-6:
                w += 2
        return dataclasses.replace(self, height=h, width=w)

    def positions_m(self, top_left: np.ndarray, window: tuple[int, int]) -> np.ndarray:
        """Inverse of :meth:`top_left`: window centres in metres for top-left corners (pixels)."""
        t = np.asarray(top_left, dtype=np.float64)
        h, w = window
        return np.stack([t[..., 0] - (self.height - h) / 2, t[..., 1] - (self.width - w) / 2], -1) * self.pixel_m


def beam_grid(volume_shape, voxel_size_m, window: tuple[int, int], n_slabs: int, multiple: int = 2) -> BeamGrid:
    """The beam grid for a volume: wide enough for every rotation angle, plus a window/2 margin.

    ``volume_shape (Z, Y, X)``, ``voxel_size_m (dz, dy, dx)`` with ``dy == dx`` (the slice pixel).
    ``window (h, w)`` is the probe size in pixels. Sizes are chosen so that at θ = 0 the slice
    pixels coincide with the voxels (``width - X`` and ``height - Y`` even), and, when parities
    allow, ``(width - w)`` and ``(height - h)`` are multiples of ``multiple`` (4 lets positions on
    even pixels map exactly onto a 2x coarser grid).
    """
    Z, Y, X = (int(v) for v in volume_shape)
    dz, dy, dx = (float(v) for v in voxel_size_m)
    if abs(dy - dx) > 1e-6 * dx:
        raise ValueError(f"the slice grid needs dy == dx, got dy={dy:g} m, dx={dx:g} m")
    if n_slabs < 1:
        raise ValueError(f"n_slabs must be ≥ 1, got {n_slabs}")
    h, w = window
    diag = math.hypot(Z * dz, X * dx)

    def ok_side(size: int, n: int, win: int) -> bool:
        if (n - size) % 2:
            return False
        if (win - size) % 2 == 0:
            return (n - win) % multiple == 0
        return True

    width = _smallest_at_least(diag / dx + w, lambda n: ok_side(X, n, w))
    height = _smallest_at_least(Y + h, lambda n: ok_side(Y, n, h))
    return BeamGrid((Z, Y, X), (dz, dy, dx), n_slabs, height, width)


class ShiftParts(NamedTuple):
    """Per-angle sample shifts split as :func:`split_sample_shifts` does (pixels)."""

    translation: np.ndarray  # (3,) (ty, tz, tx): a rigid translation of the sample in its own frame
    axis_offset: float  # the rotation axis's offset from the scan's centre, along x'
    drift: np.ndarray  # (n_angles, 2) (y, x'): the rest, with no part of the two above


def split_sample_shifts(shifts_px: np.ndarray, angles_deg) -> ShiftParts:
    """Split the sample's shifts ``(n_angles, 2)`` (y, x') in the beam frame into their three parts.

    A sample translated by ``(tz, ty, tx)`` in its own frame appears at angle θ shifted by ``ty``
    in y and ``tx·cosθ + tz·sinθ`` in x'; a rotation axis at ``x' = a`` shifts every angle by
    ``a`` in x'. Least squares: ``y(θ) = ty + d_y(θ)``, ``x'(θ) = a + tx·cosθ + tz·sinθ + d_x(θ)``,
    so ``d_y`` has zero mean and ``d_x`` is orthogonal to 1, cosθ and sinθ over the scan's angles.
    Projections alone fix the shifts only up to the translation (the sample's place in the
    volume); a drift's mean x' cannot be told from the axis offset (docs/reconstruction.md).
    With fewer than three distinct angles the split is the minimum-norm one.
    """
    s = np.asarray(shifts_px, dtype=np.float64).reshape(-1, 2)
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64).ravel())
    if len(th) != len(s) or not len(s):
        raise ValueError(f"{len(s)} shifts for {len(th)} angles")
    ty = float(s[:, 0].mean())
    A = np.stack([np.ones_like(th), np.cos(th), np.sin(th)], 1)
    (a, tx, tz), *_ = np.linalg.lstsq(A, s[:, 1], rcond=None)
    drift = np.stack([s[:, 0] - ty, s[:, 1] - A @ np.array([a, tx, tz])], 1)
    return ShiftParts(np.array([ty, tz, tx]), float(a), drift)

"""Comparing volumes with a reference: resampling onto its grid, a region, all four metrics."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io import Volume
from .segmentation import TwoGaussians, fit_two_gaussians, segmentation_scores
from .similarity import ms_ssim, pcc

AXES = "zyx"
METRICS = ("pcc", "ms_ssim", "ber", "dice")


@dataclass(frozen=True)
class Region:
    """Index ranges of the reference grid, per axis: ``{"x": (start, stop)}``.

    Each range is either fractions of the axis length (floats in [0, 1]) or voxel indices of the
    reference (ints, stop exclusive); axes not named are whole.
    """

    ranges: dict[str, tuple[float, float]]

    @classmethod
    def parse(cls, text: str) -> "Region":
        """``"x=0.6:1.0"`` (fractions: a number has a decimal point) or ``"x=150:256"`` (indices),
        several axes separated by commas (``"x=0.6:1.0,z=4:28"``). ValueError if malformed."""
        ranges: dict[str, tuple[float, float]] = {}
        for part in text.split(","):
            m = re.fullmatch(r"\s*([zyx])\s*=\s*([0-9.eE+-]+)\s*:\s*([0-9.eE+-]+)\s*", part)
            if not m or m.group(1) in ranges:
                raise ValueError(f"region {text!r}: expected AXIS=START:STOP[,...] with AXIS in z, y, x")
            lo_s, hi_s = m.group(2), m.group(3)
            is_index = all(re.fullmatch(r"[0-9]+", s) for s in (lo_s, hi_s))
            lo, hi = (int(lo_s), int(hi_s)) if is_index else (float(lo_s), float(hi_s))
            if not lo < hi or lo < 0 or (not is_index and hi > 1):
                raise ValueError(f"region {text!r}: {m.group(1)} range must have 0 <= START < STOP"
                                 + ("" if is_index else " <= 1 (fractions)"))
            ranges[m.group(1)] = (lo, hi)
        return cls(ranges)

    @classmethod
    def from_x_fraction(cls, fraction: tuple[float, float]) -> "Region":
        """The x range ``[f0, f1)`` as fractions of the width."""
        return cls({"x": (float(fraction[0]), float(fraction[1]))})

    def slices(self, shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
        """Index slices of a grid of ``shape`` (z, y, x); ValueError if a range is empty there."""
        out = []
        for axis, n in zip(AXES, shape):
            if axis not in self.ranges:
                out.append(slice(0, n))
                continue
            lo, hi = self.ranges[axis]
            if isinstance(lo, float):
                lo, hi = int(round(lo * n)), int(round(hi * n))
            lo, hi = min(lo, n), min(hi, n)
            if hi <= lo:
                raise ValueError(f"region {self.text()} is empty on an axis of {n} voxels")
            out.append(slice(lo, hi))
        return tuple(out)  # type: ignore[return-value]

    def text(self) -> str:
        return ",".join(f"{a}={lo}:{hi}" for a, (lo, hi) in self.ranges.items())


def _as_region(region) -> Region | None:
    if region is None or isinstance(region, Region):
        return region
    if isinstance(region, str):
        return Region.parse(region)
    return Region.from_x_fraction(tuple(region))


def source_coordinates(n_ref: int, d_ref: float, n_src: int, d_src: float) -> np.ndarray:
    """Continuous source indices of the ``n_ref`` reference voxel centres along one axis.

    Both grids are centred on the same point (index (n − 1)/2) and cover the same extent.
    """
    return (np.arange(n_ref) - (n_ref - 1) / 2) * (d_ref / d_src) + (n_src - 1) / 2


def _interp_axis(data: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``data`` at continuous indices ``coords`` along ``axis`` (edges clamped)."""
    n = data.shape[axis]
    c = np.clip(coords, 0, n - 1)
    i0 = np.minimum(np.floor(c).astype(np.int64), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    w = (c - i0).reshape([-1 if a == axis else 1 for a in range(data.ndim)])
    return np.take(data, i0, axis=axis) * (1 - w) + np.take(data, i1, axis=axis) * w


def resample_to(volume: Volume, reference: Volume, region=None) -> np.ndarray:
    """``volume`` trilinearly resampled at the voxel centres of ``reference`` (or of its ``region``).

    Grids share centre and extent; the voxel sizes (dz, dy, dx) set the mapping. Values are
    phase per voxel, so they are scaled by dz_ref / dz_volume (voxel length along the beam).
    Returns float64 of the reference's (region's) shape.
    """
    sl = _as_region(region).slices(reference.shape) if region is not None else (slice(None),) * 3
    data = np.asarray(volume.data, dtype=np.float64)
    if volume.shape == reference.shape and np.allclose(volume.voxel_size_m, reference.voxel_size_m, rtol=1e-6):
        return data[sl]
    for axis, (n_ref, d_ref, n_src, d_src) in enumerate(zip(reference.shape, reference.voxel_size_m,
                                                            volume.shape, volume.voxel_size_m)):
        if n_src == n_ref and np.isclose(d_src, d_ref, rtol=1e-6):
            data = data[(slice(None),) * axis + (sl[axis],)]
        else:
            data = _interp_axis(data, source_coordinates(n_ref, d_ref, n_src, d_src)[sl[axis]], axis)
    return data * (reference.voxel_size_m[0] / volume.voxel_size_m[0])


def reference_values(reference: Volume, region=None) -> np.ndarray:
    """The reference's voxels in ``region`` (whole if None) as float64, the values every score uses."""
    region = _as_region(region)
    sl = region.slices(reference.shape) if region else (slice(None),) * 3
    return np.asarray(reference.data, np.float64)[sl]


def evaluate(reference: Volume, volumes: dict[str, Volume], region=None,
             reference_fit: TwoGaussians | None = None) -> dict[str, dict[str, float]]:
    """PCC, MS-SSIM, BER and DICE of each volume against ``reference``.

    Parameters
    ----------
    reference : Volume
        The reference ``(Z, Y, X)`` (golden standard or truth); its grid is the one scored on.
    volumes : dict of str to Volume
        Volumes by name, on any grid of the reference's physical extent: each is resampled
        trilinearly onto the reference grid (:func:`resample_to`), phase scaled by the ratio of
        the voxel lengths along z.
    region : Region, str or (float, float), optional
        Part of the reference grid to score (a :class:`Region`, its text such as
        ``"x=0.6:1.0"``, or an x fraction pair); the whole grid if None.
    reference_fit : TwoGaussians, optional
        The two-Gaussian fit of :func:`reference_values` (saves refitting it); fitted here if None.

    Returns
    -------
    dict
        ``{name: {"pcc": ..., "ms_ssim": ..., "ber": ..., "dice": ...}}``, floats; BER and DICE
        segment both volumes with the two-Gaussian fit of the reference's values.

    Raises
    ------
    ValueError
        ``region`` is malformed, or empty on the reference's grid.
    """
    ref = reference_values(reference, region)
    ref_fit = reference_fit or fit_two_gaussians(ref)
    out = {}
    for name, vol in volumes.items():
        v = resample_to(vol, reference, region)
        seg = segmentation_scores(v, ref, reference_fit=ref_fit)
        out[name] = {"pcc": pcc(v, ref), "ms_ssim": ms_ssim(v, ref), "ber": seg["ber"], "dice": seg["dice"]}
    return out


def background_ber(reference: Volume, region=None, reference_fit: TwoGaussians | None = None) -> float:
    """The BER of a volume that is background everywhere: the share of the reference's voxels (in
    ``region``) that its two-Gaussian fit (``reference_fit``, fitted here if None) calls foreground.
    A BER above it is worse than guessing "no feature" (BER counts errors in both classes, so it
    favours a sparse foreground)."""
    ref = reference_values(reference, region)
    return float(np.mean((reference_fit or fit_two_gaussians(ref)).classify(ref)))


def metrics_table(metrics: dict[str, Any]) -> str:
    """Plain-text table: one block per reference (the ``vs_golden`` … blocks of a metrics file),
    one row per volume, and the BER of an all-background volume where ``metrics["background_ber"]``
    gives it."""
    lines = []
    background = metrics.get("background_ber", {})
    for ref_name, rows in metrics.items():
        if not ref_name.startswith("vs_"):
            continue
        lines.append(f"{ref_name:<18}{'PCC':>8}{'MS-SSIM':>9}{'BER':>8}{'DICE':>8}")
        for name, m in rows.items():
            cells = "".join(f"{m[k]:>{w}.3f}" if isinstance(m.get(k), (int, float)) else f"{'-':>{w}}"
                            for k, w in zip(METRICS, (8, 9, 8, 8)))
            lines.append(f"  {name:<16}{cells}")  # rapid_zero_shot fits
        if ref_name in background:
            lines.append(f"  {'(all background)':<16}{'-':>8}{'-':>9}{background[ref_name]:>8.3f}{'-':>8}")
    return "\n".join(lines)

"""Comparing volumes with a reference: resampling onto its grid, a region, all four metrics."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from ..io import Volume
from .segmentation import fit_two_gaussians, segmentation_scores
from .similarity import ms_ssim, pcc


def resample_to(volume: Volume, reference: Volume) -> np.ndarray:
    """``volume`` trilinearly resampled at the voxel centres of ``reference`` (same physical centre).

    Grids are centred (axis at index (n−1)/2); values are phase per voxel, so they are scaled by
    the ratio of the voxel lengths along z (the beam direction at θ = 0).
    """
    if volume.shape == reference.shape and np.allclose(volume.voxel_size_m, reference.voxel_size_m):
        return np.asarray(volume.data, dtype=np.float32)
    coords = []
    for n_ref, d_ref, n_src, d_src in zip(reference.shape, reference.voxel_size_m, volume.shape, volume.voxel_size_m):
        coords.append((np.arange(n_ref) - (n_ref - 1) / 2) * d_ref / d_src + (n_src - 1) / 2)
    grid = np.meshgrid(*coords, indexing="ij")
    out = map_coordinates(np.asarray(volume.data, np.float64), grid, order=1, mode="nearest")
    return (out * reference.voxel_size_m[0] / volume.voxel_size_m[0]).astype(np.float32)


def x_region(shape, fraction: tuple[float, float] | None) -> tuple[slice, slice, slice]:
    """Index slices for the x range ``[f0, f1)`` (fractions of the width); None → everything."""
    if fraction is None:
        return (slice(None),) * 3
    X = shape[2]
    return (slice(None), slice(None), slice(int(round(fraction[0] * X)), int(round(fraction[1] * X))))


def evaluate(reference: Volume, volumes: dict[str, Volume], region: tuple[float, float] | None = None
             ) -> dict[str, dict[str, float]]:
    """``{name: {"pcc", "ms_ssim", "ber", "dice"}}`` of each volume against ``reference`` in ``region``."""
    sl = x_region(reference.shape, region)
    ref = np.asarray(reference.data, np.float64)[sl]
    ref_fit = fit_two_gaussians(ref)
    out = {}
    for name, vol in volumes.items():
        v = resample_to(vol, reference)[sl].astype(np.float64)
        seg = segmentation_scores(v, ref, reference_fit=ref_fit)
        out[name] = {"pcc": pcc(v, ref), "ms_ssim": ms_ssim(v, ref), "ber": seg["ber"], "dice": seg["dice"]}
    return out


def metrics_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Plain-text table: one block per reference, one row per volume, columns PCC MS-SSIM BER DICE."""
    lines = []
    for ref_name, rows in results.items():
        lines.append(f"{ref_name:<14}{'PCC':>8}{'MS-SSIM':>9}{'BER':>8}{'DICE':>8}")
        for name, m in rows.items():
            lines.append(f"  {name:<12}{m['pcc']:>8.3f}{m['ms_ssim']:>9.3f}{m['ber']:>8.3f}{m['dice']:>8.3f}")
    return "\n".join(lines)

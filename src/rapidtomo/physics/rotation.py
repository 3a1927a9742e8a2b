"""Rotation of a ``(z, y, x)`` volume about y onto the beam grid, its exact adjoint, and slabs.

Sample rotated by θ: object point ``(z, x)`` → beam frame ``x' = x·cosθ + z·sinθ``,
``b = −x·sinθ + z·cosθ``. Each beam-grid sample ``(b, y, x')`` takes the bilinear interpolation
(in the z–x plane, zero outside the volume) of the phase *density* φ/dz, times the beam step,
so that sums along b are line integrals of the phase in radians. Linear in the volume; the
adjoint scatters with the same weights (``<R v, g> = <v, R* g>`` holds exactly).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .geometry import BeamGrid


def interpolation_weights(grid: BeamGrid, theta_rad: float, device="cpu",
                          dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear gather indices ``(4, P)`` into the flattened z–x plane and weights ``(4, P)``.

    ``P = n_beam * width`` beam-plane samples; weights already include the factor beam_step/dz.
    """
    Z, _, X = grid.volume_shape
    dz, _, dx = grid.voxel_size_m
    b = (np.arange(grid.n_beam) - (grid.n_beam - 1) / 2) * grid.beam_step_m
    xp = (np.arange(grid.width) - (grid.width - 1) / 2) * dx
    B, XP = np.meshgrid(b, xp, indexing="ij")
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    x = XP * c - B * s
    z = XP * s + B * c
    fz = z / dz + (Z - 1) / 2
    fx = x / dx + (X - 1) / 2
    z0, x0 = np.floor(fz), np.floor(fx)
    wz, wx = fz - z0, fx - x0
    idx, wts = [], []
    for oz, ox, w in ((0, 0, (1 - wz) * (1 - wx)), (0, 1, (1 - wz) * wx), (1, 0, wz * (1 - wx)), (1, 1, wz * wx)):
        iz, ix = z0 + oz, x0 + ox
        inside = (iz >= 0) & (iz < Z) & (ix >= 0) & (ix < X)
        idx.append(np.where(inside, iz * X + ix, 0).ravel())
        wts.append(np.where(inside, w, 0.0).ravel())
    scale = grid.beam_step_m / dz
    return (torch.as_tensor(np.stack(idx), dtype=torch.long, device=device),
            torch.as_tensor(np.stack(wts) * scale, dtype=dtype, device=device))


def _weights(grid, theta, like: torch.Tensor):
    return interpolation_weights(grid, theta, like.device, like.real.dtype if like.is_complex() else like.dtype)


def rotate_to_beam(volume: torch.Tensor, theta_rad: float, grid: BeamGrid, weights=None) -> torch.Tensor:
    """Phase per beam sample ``(n_beam, Y, width)`` of a phase-per-voxel volume ``(Z, Y, X)``."""
    Z, Y, X = volume.shape
    idx, w = weights if weights is not None else _weights(grid, theta_rad, volume)
    plane = volume.permute(1, 0, 2).reshape(Y, Z * X)
    out = (plane[:, idx] * w).sum(dim=1)  # (Y, P)
    return out.reshape(Y, grid.n_beam, grid.width).permute(1, 0, 2)


def rotate_to_beam_adjoint(beam: torch.Tensor, theta_rad: float, grid: BeamGrid, weights=None) -> torch.Tensor:
    """Adjoint of :func:`rotate_to_beam`: ``(n_beam, Y, width)`` → ``(Z, Y, X)``."""
    Z, Y, X = grid.volume_shape
    idx, w = weights if weights is not None else _weights(grid, theta_rad, beam)
    g = beam.permute(1, 0, 2).reshape(Y, -1)
    out = torch.zeros((Y, Z * X), dtype=beam.dtype, device=beam.device)
    for k in range(idx.shape[0]):
        out.index_add_(1, idx[k], g * w[k])
    return out.reshape(Y, Z, X).permute(1, 0, 2)


def slab_phases(volume: torch.Tensor, theta_rad: float, grid: BeamGrid, weights=None) -> torch.Tensor:
    """Phase of each of the L slabs on the slice grid ``(L, height, width)`` (radians).

    The rotated volume's beam samples are summed in L consecutive groups (line integrals
    through each slab) and padded with air (0) in y to the slice height.
    """
    beam = rotate_to_beam(volume, theta_rad, grid, weights)
    L = grid.n_slabs
    slabs = beam.reshape(L, grid.n_beam // L, beam.shape[1], grid.width).sum(dim=1)
    pad = (grid.height - beam.shape[1]) // 2
    return torch.nn.functional.pad(slabs, (0, 0, pad, grid.height - beam.shape[1] - pad))


def project(volume: torch.Tensor, angles_rad, grid: BeamGrid) -> torch.Tensor:
    """Ideal phase projections ``(n_angles, Y, width)``: line integrals along the beam.

    The projection approximation (no diffraction inside the sample), for testing tomography
    apart from ptychography.
    """
    return torch.stack([rotate_to_beam(volume, float(a), grid).sum(dim=0) for a in angles_rad])

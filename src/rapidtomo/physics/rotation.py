"""Rotation of a ``(z, y, x)`` volume about y onto the beam grid, slabs, and their exact adjoints.

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

from .geometry import BeamGrid, BeamSampling


def interpolation_weights(grid: BeamGrid, theta_rad: float, device="cpu",
                          dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear gather indices ``(4, P)`` into the flattened z–x plane and weights ``(4, P)``.

    ``P = n_beam * width`` beam-plane samples, ``(n_beam, beam_step_m) = grid.beam_sampling(θ)``
    centred on the axis; weights already include the factor beam_step/dz.
    """
    Z, _, X = grid.volume_shape
    dz, _, dx = grid.voxel_size_m
    n_beam, step, _, _ = grid.beam_sampling(theta_rad)
    b = (np.arange(n_beam) - (n_beam - 1) / 2) * step
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
    scale = step / dz
    return (torch.as_tensor(np.stack(idx), dtype=torch.long, device=device),
            torch.as_tensor(np.stack(wts) * scale, dtype=dtype, device=device))


def _weights(grid, theta, like: torch.Tensor):
    return interpolation_weights(grid, theta, like.device, like.real.dtype if like.is_complex() else like.dtype)


def rotate_to_beam(volume: torch.Tensor, theta_rad: float, grid: BeamGrid, weights=None) -> torch.Tensor:
    """Phase per beam sample ``(n_beam, Y, width)`` of a phase-per-voxel volume ``(Z, Y, X)``.

    ``weights``: :func:`interpolation_weights` of this grid and angle (computed when None)."""
    Z, Y, X = volume.shape
    idx, w = weights if weights is not None else _weights(grid, theta_rad, volume)
    plane = volume.permute(1, 0, 2).reshape(Y, Z * X)
    out = (plane[:, idx] * w).sum(dim=1)  # (Y, P)
    return out.reshape(Y, -1, grid.width).permute(1, 0, 2)


def rotate_to_beam_adjoint(beam: torch.Tensor, theta_rad: float, grid: BeamGrid, weights=None) -> torch.Tensor:
    """Adjoint of :func:`rotate_to_beam`: ``(n_beam, Y, width)`` → ``(Z, Y, X)``."""
    Z, Y, X = grid.volume_shape
    idx, w = weights if weights is not None else _weights(grid, theta_rad, beam)
    g = beam.permute(1, 0, 2).reshape(Y, -1)
    out = torch.zeros((Y, Z * X), dtype=beam.dtype, device=beam.device)
    for k in range(idx.shape[0]):
        out.index_add_(1, idx[k], g * w[k])
    return out.reshape(Y, Z, X).permute(1, 0, 2)


def sum_slabs(beam: torch.Tensor, sampling: BeamSampling, n_slabs: int) -> torch.Tensor:
    """Sum beam samples ``(n_beam, ...)`` into their slabs → ``(n_slabs, ...)``.

    ``sampling``: ``grid.beam_sampling(θ)`` (each sample's slabs and weights).
    """
    out = torch.zeros((n_slabs,) + tuple(beam.shape[1:]), dtype=beam.dtype, device=beam.device)
    for idx, w in _slab_weights(sampling, beam):
        out.index_add_(0, idx, beam * w)
    return out


def sum_slabs_adjoint(slabs: torch.Tensor, sampling: BeamSampling) -> torch.Tensor:
    """Adjoint of :func:`sum_slabs`: each sample takes its slabs' values, weighted → ``(n_beam, ...)``."""
    return sum(slabs[idx] * w for idx, w in _slab_weights(sampling, slabs))


def _slab_weights(sampling: BeamSampling, like: torch.Tensor):
    """``[(index (n_beam,), weight (n_beam, 1, …, 1))]`` for the two slabs of every sample."""
    shape = (-1,) + (1,) * (like.ndim - 1)
    real = like.real.dtype if like.is_complex() else like.dtype
    return [(torch.as_tensor(i, device=like.device), torch.as_tensor(w, dtype=real, device=like.device).reshape(shape))
            for i, w in zip(sampling.slab_index, sampling.slab_weight)]


def slab_phases(volume: torch.Tensor, theta_rad: float, grid: BeamGrid, weights=None) -> torch.Tensor:
    """Phase of each of the L slabs on the slice grid ``(L, height, width)`` (radians).

    The rotated volume's beam samples are summed in L consecutive groups (line integrals
    through each slab of thickness ``grid.slab_thickness_m(θ)``) and padded with air (0) in y to
    the slice height.
    """
    sampling = grid.beam_sampling(theta_rad)
    slabs = sum_slabs(rotate_to_beam(volume, theta_rad, grid, weights), sampling, grid.n_slabs)
    pad = (grid.height - slabs.shape[1]) // 2
    return torch.nn.functional.pad(slabs, (0, 0, pad, grid.height - slabs.shape[1] - pad))


def project(volume: torch.Tensor, angles_rad, grid: BeamGrid) -> torch.Tensor:
    """Ideal phase projections ``(n_angles, Y, width)``: line integrals along the beam.

    The projection approximation (no diffraction inside the sample), for testing tomography
    apart from ptychography.
    """
    return torch.stack([rotate_to_beam(volume, float(a), grid).sum(dim=0) for a in angles_rad])

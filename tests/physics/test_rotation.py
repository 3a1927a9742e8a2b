"""Rotation onto the beam grid: identity, axis swap, line integrals (adjoints: test_adjoints.py)."""
import math

import numpy as np
import pytest
import torch

from rapidtomo.physics.geometry import beam_grid
from rapidtomo.physics.rotation import project, rotate_to_beam, slab_phases


def centre_crop(beam, grid):
    Z, Y, X = grid.volume_shape
    b0, x0 = (beam.shape[0] - Z) // 2, (grid.width - X) // 2
    return beam[b0:b0 + Z, :, x0:x0 + X]


@pytest.mark.parametrize("shape", [(6, 5, 10), (7, 4, 9), (8, 3, 8)])
def test_zero_angle_is_identity(shape):
    grid = beam_grid(shape, (1e-8, 1e-8, 1e-8), (4, 4), 1)
    v = torch.rand(shape, dtype=torch.float64)
    beam = rotate_to_beam(v, 0.0, grid)
    torch.testing.assert_close(centre_crop(beam, grid), v)
    assert abs(beam.sum() - v.sum()) < 1e-9  # nothing else on the grid


def test_ninety_degrees_swaps_axes():
    n = 9
    grid = beam_grid((n, 4, n), (1e-8,) * 3, (2, 2), 1)
    v = torch.rand((n, 4, n), dtype=torch.float64)
    beam = centre_crop(rotate_to_beam(v, math.pi / 2, grid), grid)
    # x' = z and b = -x: beam[b, y, x'] = v[z = x', y, x = -b]
    torch.testing.assert_close(beam, v.permute(2, 1, 0).flip(0))


@pytest.mark.parametrize("voxel", [(1e-8, 1e-8, 1e-8), (2.5e-8, 1e-8, 1e-8)])
def test_projection_conserves_total_phase(voxel):
    # a smooth blob well inside the grid: the projection's pixels (width dx) sum the phase of every voxel
    Z, Y, X = 24, 2, 24
    z, x = np.meshgrid(np.arange(Z) - (Z - 1) / 2, np.arange(X) - (X - 1) / 2, indexing="ij")
    blob = np.exp(-(z**2 + x**2) / 20.0)
    v = torch.tensor(np.repeat(blob[:, None], Y, 1))
    grid = beam_grid((Z, Y, X), voxel, (2, 2), 1)
    for theta in (0.0, 0.5, 1.3):
        p = project(v, [theta], grid)[0]
        assert abs(p.sum() - v.sum()) < 0.02 * v.sum()


def test_slab_phases_sum_to_projection():
    grid = beam_grid((6, 4, 10), (1e-8,) * 3, (4, 4), 5)
    v = torch.rand((6, 4, 10), dtype=torch.float64)
    slabs = slab_phases(v, 0.6, grid)
    assert slabs.shape == (5, grid.height, grid.width)
    pad = (grid.height - 4) // 2
    torch.testing.assert_close(slabs.sum(0)[pad:pad + 4], project(v, [0.6], grid)[0])

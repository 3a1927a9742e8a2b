"""The ptycho-tomographic operator: the physical sign (a refracting wedge), slabs that follow the sample,
and agreement of its pieces with the multislice core."""
import math

import numpy as np
import pytest
import torch

from rapidtomo.physics.geometry import beam_grid
from rapidtomo.physics.multislice import forward_intensity, propagate
from rapidtomo.physics.operator import PtychoTomoOperator, scan_intensities, transmission

LAM, DX = 1.409e-10, 28e-9


def gaussian_probe(h, sigma_px):
    r = np.arange(h) - (h - 1) / 2
    return np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma_px**2)).astype(complex)[None]


def wedge(n, delta, tan_angle, axis):
    """Phase per voxel φ = k·δ·dz·(filled fraction) of a wedge ``(n, n, n)`` whose thickness along z
    grows toward +x (``axis="x"``) or +y, by ``tan_angle`` per unit length, half-filled at the centre."""
    c = (np.arange(n) - (n - 1) / 2) * DX
    thickness = n * DX / 2 + tan_angle * c  # along the chosen axis
    filled = np.clip(thickness[None, :] / DX - np.arange(n)[:, None], 0, 1)  # (z, along-axis)
    vol = filled[:, None, :] * np.ones((1, n, 1)) if axis == "x" else filled[:, :, None] * np.ones((1, 1, n))
    return 2 * math.pi / LAM * delta * DX * vol


def centroid(I):
    """Intensity centroid ``(row, col)`` of a pattern ``(h, w)`` in pixels."""
    rows, cols = np.indices(I.shape)
    return np.array([(I * rows).sum(), (I * cols).sum()]) / I.sum()


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("n_slabs", [1, 5])
def test_wedge_refracts_toward_its_thin_side(axis, n_slabs):
    """n = 1 − δ: X-rays bend away from the thick side by δ·tanα; on the detector (seen along the beam,
    columns toward +x, rows toward +y) the centroid moves by δ·tanα / (λ / (w·dx)) pixels toward the
    thin side. A transmission exp(+iφ) (a sample with n = 1 + δ) moves it the other way."""
    n, h, delta, tan_a = 64, 64, 2e-4, 1.0
    phase = torch.as_tensor(wedge(n, delta, tan_a, axis))
    grid = beam_grid(phase.shape, (DX,) * 3, (h, h), n_slabs)
    op = PtychoTomoOperator(grid, gaussian_probe(h, 6.0), LAM, dtype=torch.float64).at(0.0)
    centre = torch.tensor([[(grid.height - h) // 2, (grid.width - h) // 2]])
    shift = (centroid(op.intensities(phase, centre)[0].numpy())
             - centroid(op.intensities(torch.zeros_like(phase), centre)[0].numpy()))
    expected = -delta * tan_a * h * DX / LAM  # pixels; ≈ −2.5
    along, across = (1, 0) if axis == "x" else (0, 1)
    assert shift[along] == pytest.approx(expected, rel=0.02)
    assert abs(shift[across]) < 0.01 * abs(expected)


def test_transmission_sign_and_attenuation():
    phi, mu = torch.tensor([0.0, 0.3]), torch.tensor([0.0, 0.2])
    t = transmission(phi, mu)
    torch.testing.assert_close(t, torch.exp(torch.complex(-mu, -phi)))


def plate(shape):
    return torch.ones(shape, dtype=torch.float64)


@pytest.mark.parametrize("theta_deg", [0.0, 20.0, -45.0, 70.0])
def test_slabs_follow_the_sample(theta_deg):
    """Every slab of a plate holds matter at every angle (the L slabs span the support along the beam),
    the slab spacing is the projected extent / L, and slab phases add up to the projection."""
    Z, Y, X, L = 8, 2, 48, 5
    theta = math.radians(theta_deg)
    grid = beam_grid((Z, Y, X), (DX,) * 3, (8, 8), L)
    op = PtychoTomoOperator(grid, gaussian_probe(8, 2.0), LAM, dtype=torch.float64).at(theta)
    assert op.slice_spacing_m == pytest.approx((Z * abs(math.cos(theta)) + X * abs(math.sin(theta))) * DX / L)
    per_slab = op.slab_phases(plate((Z, Y, X))).sum(dim=(1, 2))
    total = float(per_slab.sum())
    assert total == pytest.approx(Z * Y * X, rel=0.02)  # phase per voxel 1, summed over the plate
    assert float(per_slab.min()) > 0.05 * total / L
    if theta_deg == 0.0:  # the plate is uniform along z: each slab holds 1/L of it
        np.testing.assert_allclose(per_slab.numpy(), total / L, rtol=0.03)


def test_at_zero_angle_slab_l_is_z_sample_l():
    """With Z = L (the approximant's unknown), slab l at θ = 0 is z-sample l, voxel for voxel."""
    L, Y, X = 5, 4, 10
    v = torch.rand((L, Y, X), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grid = beam_grid((L, Y, X), (84e-9, 56e-9, 56e-9), (4, 4), L)
    slabs = PtychoTomoOperator(grid, gaussian_probe(4, 1.0), LAM, dtype=torch.float64).at(0.0).slab_phases(v)
    r, c = (grid.height - Y) // 2, (grid.width - X) // 2
    torch.testing.assert_close(slabs[:, r:r + Y, c:c + X], v)
    assert float(slabs.abs().sum()) == pytest.approx(float(v.sum()))


def test_operator_is_the_multislice_core_on_its_transmission():
    """H_θ = forward_intensity(transmission(slabs), probe propagated from b = 0 to the first slab, Δz(θ)),
    and the scan helper loops over angles."""
    g = torch.Generator().manual_seed(3)
    shape, h = (6, 8, 14), 8
    phi = torch.rand(shape, dtype=torch.float64, generator=g)
    mu = 0.1 * torch.rand(shape, dtype=torch.float64, generator=g)
    grid = beam_grid(shape, (DX,) * 3, (h, h), 3)
    probe = gaussian_probe(h, 2.0) * (1 + 0.5j)
    pos = np.array([[0, 0], [2, 6], [grid.height - h, grid.width - h]])
    op = PtychoTomoOperator(grid, probe, LAM, dtype=torch.float64)
    angles = [0.0, 0.7]
    scan = scan_intensities(phi.numpy(), angles, grid, probe, pos, LAM, attenuation=mu.numpy(),
                            dtype=torch.float64)
    for i, theta in enumerate(angles):
        a = op.at(theta)
        t = transmission(a.slab_phases(phi), a.slab_phases(mu))
        at_first = propagate(probe, (grid.slab_thickness_m(theta) - grid.extent_m(theta)) / 2, wavelength_m=LAM,
                             pixel_size_m=DX)
        ref = forward_intensity(t.numpy(), at_first, pos, wavelength_m=LAM, pixel_size_m=DX,
                                slice_spacing_m=grid.slab_thickness_m(theta))
        np.testing.assert_allclose(a.intensities(phi, torch.as_tensor(pos), mu).numpy(), ref, rtol=1e-10)
        np.testing.assert_allclose(scan[i], ref, rtol=1e-5)

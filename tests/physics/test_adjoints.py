"""Adjoint identities and gradients of every piece of the forward operator, with one shared helper.

Rotation, slab summation and their composition (the operator's linear part), free propagation by
±Δz, the multislice core as a linear map of the probe, and the whole (nonlinear) operator H_θ.
"""
import numpy as np
import pytest
import torch
from operator_checks import dot_test, gradient_test

from rapidtomo.physics.geometry import beam_grid
from rapidtomo.physics.multislice import Multislice, propagate
from rapidtomo.physics.operator import PtychoTomoOperator
from rapidtomo.physics.rotation import (rotate_to_beam, rotate_to_beam_adjoint, slab_phases, sum_slabs,
                                        sum_slabs_adjoint)

LAM, PIX = 1.409e-10, 14e-9
# (λ, pixel): X-rays (every component propagates) and a pixel below λ/2 (many are evanescent)
REGIMES = {"x-ray": (LAM, PIX), "evanescent": (1e-9, 0.3e-9)}


def crandn(shape, g):
    return torch.complex(torch.randn(shape, dtype=torch.float64, generator=g),
                         torch.randn(shape, dtype=torch.float64, generator=g))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(7)


@pytest.mark.parametrize("theta", [0.0, 0.37, -1.1, 2.5])
@pytest.mark.parametrize("voxel", [(1e-8, 1e-8, 1e-8), (3e-8, 1e-8, 1e-8)])
def test_rotation_adjoint(gen, theta, voxel):
    grid = beam_grid((5, 3, 11), voxel, (4, 4), 1)
    n_beam = grid.beam_sampling(theta)[0]
    dot_test(lambda v: rotate_to_beam(v, theta, grid), lambda y: rotate_to_beam_adjoint(y, theta, grid),
             torch.rand((5, 3, 11), dtype=torch.float64, generator=gen),
             torch.rand((n_beam, 3, grid.width), dtype=torch.float64, generator=gen))


@pytest.mark.parametrize("L", [1, 3, 5, 40])
@pytest.mark.parametrize("theta", [0.0, 0.3, 1.2])
def test_slab_sum_adjoint(gen, L, theta):
    sampling = beam_grid((7, 3, 9), (2e-8, 1e-8, 1e-8), (4, 4), L).beam_sampling(theta)
    dot_test(lambda b: sum_slabs(b, sampling, L), lambda s: sum_slabs_adjoint(s, sampling),
             torch.rand((sampling.n_beam, 3, 6), dtype=torch.float64, generator=gen),
             torch.rand((L, 3, 6), dtype=torch.float64, generator=gen))


@pytest.mark.parametrize("theta", [0.0, 0.6, -1.4])
def test_slab_phases_adjoint(gen, theta):
    """The operator's linear part (rotate → slab sums → pad in y): its adjoint is the chain of adjoints
    (and autograd's vector-Jacobian product, checked by dot_test)."""
    shape = (6, 4, 10)
    grid = beam_grid(shape, (2e-8, 1e-8, 1e-8), (4, 4), 5)
    sampling = grid.beam_sampling(theta)
    pad = (grid.height - shape[1]) // 2

    def adj(s):
        return rotate_to_beam_adjoint(sum_slabs_adjoint(s[:, pad:pad + shape[1]], sampling), theta, grid)

    v = torch.rand(shape, dtype=torch.float64, generator=gen)
    y = torch.rand((5, grid.height, grid.width), dtype=torch.float64, generator=gen)
    dot_test(lambda x: slab_phases(x, theta, grid), adj, v, y)


@pytest.mark.parametrize("regime", REGIMES)
def test_back_propagation_is_the_exact_adjoint(gen, regime):
    """conj(H_Δz) = H_−Δz (the evanescent mask is real): P_−Δz is P_Δz's adjoint in every regime."""
    lam, pix = REGIMES[regime]
    kw = dict(wavelength_m=lam, pixel_size_m=pix)
    for dz in (1.3e-6, -0.4e-6, 2e-9):
        dot_test(lambda x: propagate(x, dz, **kw), lambda y: propagate(y, -dz, **kw),
                 crandn((2, 24, 20), gen), crandn((2, 24, 20), gen))


def band_part(x, lam, pix):
    """The propagating components of fields ``(..., h, w)``: spatial frequencies below 1/λ."""
    fy, fx = np.fft.fftfreq(x.shape[-2], d=pix), np.fft.fftfreq(x.shape[-1], d=pix)
    band = torch.as_tensor((fy[:, None] ** 2 + fx[None, :] ** 2) < 1 / lam**2)
    return torch.fft.ifft2(torch.fft.fft2(x) * band)


@pytest.mark.parametrize("regime", REGIMES)
def test_back_propagation_inverts_only_the_propagating_band(gen, regime):
    lam, pix = REGIMES[regime]
    kw = dict(wavelength_m=lam, pixel_size_m=pix)
    x = crandn((3, 16, 18), gen)
    there_and_back = propagate(propagate(x, 2e-6, **kw), -2e-6, **kw)
    inside = band_part(x, lam, pix)
    torch.testing.assert_close(there_and_back, inside, rtol=0, atol=1e-12)
    # Parseval: unitary on the band, so ‖P x‖ = ‖band(x)‖
    norm = torch.linalg.vector_norm
    assert abs(norm(propagate(x, 2e-6, **kw)) - norm(inside)) < 1e-12 * norm(x)
    lost = norm(x - inside) / norm(x)
    if regime == "evanescent":  # the inverse fails off the band: the evanescent part is gone
        assert lost > 0.3
    else:
        assert lost < 1e-12


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("L", [1, 3])
def test_multislice_adjoint_in_the_probe_is_reversed_conjugate_multislice(gen, regime, L):
    """For fixed slices, probe → exit wave is linear; its adjoint runs the conjugate slices in reverse
    order with propagation by −Δz."""
    lam, pix = REGIMES[regime]
    H, h, dz = 20, 12, 0.8e-6
    slices = torch.polar(torch.rand((L, H, H), dtype=torch.float64, generator=gen) + 0.5,
                         torch.rand((L, H, H), dtype=torch.float64, generator=gen) * 6)
    pos = torch.tensor([[3, 5]])

    def fwd(u):
        return Multislice(u, wavelength_m=lam, pixel_size_m=pix, slice_spacing_m=dz).exit_waves(slices, pos)

    def adj(psi):
        back = Multislice(psi[0], wavelength_m=lam, pixel_size_m=pix, slice_spacing_m=-dz)
        return back.exit_waves(slices.conj().flip(0), pos)[0]

    dot_test(fwd, adj, crandn((2, h, h), gen), crandn((1, 2, h, h), gen))


@pytest.mark.parametrize("theta", [0.0, 0.5])
def test_whole_operator_gradient_in_phase_and_attenuation(gen, theta):
    shape = (6, 8, 12)
    grid = beam_grid(shape, (28e-9,) * 3, (8, 8), 3)
    probe = crandn((2, 8, 8), gen)
    op = PtychoTomoOperator(grid, probe, LAM, dtype=torch.float64).at(theta)
    pos = torch.tensor([[0, 2], [4, grid.width - 8], [3, 7]])
    phi = torch.rand(shape, dtype=torch.float64, generator=gen)
    mu = 0.05 * torch.rand(shape, dtype=torch.float64, generator=gen)
    target = op.intensities(phi + 0.1, pos, mu) * 1.1

    def loss(p, m):
        return ((op.intensities(p, pos, m) - target) ** 2).sum()

    gradient_test(lambda p: loss(p, mu), phi)
    gradient_test(lambda m: loss(phi, m), mu)

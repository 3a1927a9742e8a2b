import numpy as np
import pytest

from rapidtomo.physics.multislice import forward_intensity
from rapidtomo.physics.probe import (crop_patterns_center, downsample_probe, gaussian_schell_modes, probe_modes,
                                    zone_plate_probe)
from rapidtomo.physics.scanning import scan_positions


def test_zone_plate_probe_is_annular_in_far_field_and_normalised():
    p = zone_plate_probe(64, 14e-9, 8.8)
    assert np.sum(np.abs(p) ** 2) == pytest.approx(1.0)
    F = np.abs(np.fft.fftshift(np.fft.fft2(p)))
    c = F[32, 32]  # central stop: no power at zero frequency
    assert c < 1e-6 * F.max()
    # the spot is smaller than the window and centred
    I = np.abs(p) ** 2
    yy, xx = np.indices(I.shape)
    assert abs((I * yy).sum() - 31.5) < 2 and abs((I * xx).sum() - 31.5) < 2
    assert I[:4].sum() < 0.05


@pytest.mark.parametrize("M", [1, 3, 12])
def test_modes_orthogonal_decaying_total_power(M):
    p = zone_plate_probe(32, 28e-9, 8.8)
    m = probe_modes(p, M, decay=0.6)
    gram = np.einsum("aij,bij->ab", m.conj(), m)
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-10
    power = np.real(np.diag(gram))
    assert power.sum() == pytest.approx(1.0) and np.all(np.diff(power) < 0)
    # mode 0 is the coherent probe itself, scaled to its share of the power
    np.testing.assert_allclose(m[0], p * np.sqrt(power[0]), atol=1e-12)


def cross_spectral_density(probe, xi, pixel):
    """W(r1, r2) = P*(r1) P(r2) exp(−|r1 − r2|²/(2ξ²)) built directly, ``(n², n²)``."""
    r = np.stack(np.indices(probe.shape), -1).reshape(-1, 2) * pixel
    d2 = ((r[:, None] - r[None]) ** 2).sum(-1)
    p = probe.ravel()
    return p.conj()[:, None] * p[None, :] * np.exp(-d2 / (2 * xi**2))


def test_gaussian_schell_modes_are_the_eigenfunctions_of_the_cross_spectral_density():
    p = zone_plate_probe(12, 28e-9, 8.8) * 3.0
    W = cross_spectral_density(p, 150e-9, 28e-9)
    every = gaussian_schell_modes(p, 10**6, 150e-9, 28e-9)
    flat = every.reshape(len(every), -1)
    np.testing.assert_allclose(flat.conj().T @ flat, W, atol=1e-9 * np.abs(W).max())  # W = Σ ψ_m* ψ_m
    gram = flat.conj() @ flat.T
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-10 * np.abs(gram).max()  # orthogonal
    power = np.real(np.diag(gram))
    assert power.sum() == pytest.approx(np.trace(W).real, rel=1e-9) and np.all(np.diff(power) <= 1e-12)
    eig = np.linalg.eigvalsh(W)[::-1]
    np.testing.assert_allclose(power[:5], eig[:5], rtol=1e-8)
    # M modes: the leading eigenfunctions, rescaled to carry the whole trace
    three = gaussian_schell_modes(p, 3, 150e-9, 28e-9)
    got = np.real(np.einsum("mij,mij->m", three.conj(), three))
    np.testing.assert_allclose(got / got.sum(), eig[:3] / eig[:3].sum(), rtol=1e-8)
    assert got.sum() == pytest.approx(np.trace(W).real)


def test_more_coherent_illumination_puts_more_power_in_the_first_mode():
    p = zone_plate_probe(24, 28e-9, 8.8)
    first = [gaussian_schell_modes(p, 4, xi, 28e-9) for xi in (100e-9, 300e-9, 3e-6)]
    share = [np.sum(np.abs(m[0]) ** 2) / np.sum(np.abs(m) ** 2) for m in first]
    assert share[0] < share[1] < share[2] and share[2] > 0.99
    # the fully coherent limit: mode 0 is the probe itself (up to a global phase)
    assert abs(np.vdot(first[2][0], p)) / (np.linalg.norm(first[2][0]) * np.linalg.norm(p)) > 0.999


def test_downsampled_probe_gives_the_central_half_of_the_far_field(rng):
    probe = probe_modes(zone_plate_probe(32, 28e-9, 8.8), 2)
    coarse = downsample_probe(probe)
    free = np.ones((1, 32, 32), complex)
    fine = forward_intensity(free, probe, np.zeros((1, 2), int), wavelength_m=1.4e-10, pixel_size_m=28e-9,
                             slice_spacing_m=1e-6)
    got = forward_intensity(free[:, :16, :16], coarse, np.zeros((1, 2), int), wavelength_m=1.4e-10,
                            pixel_size_m=56e-9, slice_spacing_m=1e-6)
    np.testing.assert_allclose(got, crop_patterns_center(fine), rtol=1e-9, atol=1e-12 * fine.max())


def test_scan_covers_edges_snake_and_even():
    pos = scan_positions((40, 70), (16, 16), 6, pattern="snake")
    assert pos[:, 0].min() == 0 and pos[:, 0].max() == 24 and pos[:, 1].max() == 54
    assert np.all(pos % 2 == 0)
    rows = np.unique(pos[:, 0])
    assert np.all(np.diff(rows) <= 6) and len(np.unique(pos, axis=0)) == len(pos)
    first, second = pos[pos[:, 0] == rows[0], 1], pos[pos[:, 0] == rows[1], 1]
    assert np.all(np.diff(first) > 0) and np.all(np.diff(second) < 0)
    raster = scan_positions((40, 70), (16, 16), 6, pattern="raster")
    assert np.all(np.diff(raster[raster[:, 0] == rows[1], 1]) > 0)
    jit = scan_positions((40, 70), (16, 16), 6, jitter_px=2, rng=np.random.default_rng(0))
    assert jit.min() >= 0 and jit[:, 0].max() <= 24 and jit[:, 1].max() <= 54 and not np.array_equal(jit, pos)
    with pytest.raises(ValueError):
        scan_positions((40, 70), (16, 16), 6, pattern="spiral")

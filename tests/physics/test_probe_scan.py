import numpy as np
import pytest

from rapidtomo.physics.multislice import forward_intensity
from rapidtomo.physics.probe import crop_patterns_center, downsample_probe, probe_modes, zone_plate_probe
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

import numpy as np
import pytest

from rapidtomo.metrics import psd_planes
from rapidtomo.metrics.spectra import frequencies

Z, Y, X = 16, 24, 40


def plane_wave(fz, fy, fx):
    z, y, x = np.meshgrid(np.arange(Z), np.arange(Y), np.arange(X), indexing="ij")
    return np.cos(2 * np.pi * (fz * z / Z + fy * y / Y + fx * x / X)) + 0.5


@pytest.mark.parametrize("plane,freq,expect", [("kx_kz", (3, 0, 5), (3, 5)), ("ky_kz", (2, 7, 0), (2, 7)),
                                                ("kx_ky", (0, 4, 9), (4, 9))])
def test_psd_of_a_plane_wave_peaks_at_its_frequency(plane, freq, expect):
    p = psd_planes(plane_wave(*freq))[plane]
    r, c = np.unravel_index(np.argmax(p), p.shape)
    assert (abs(r - p.shape[0] // 2), abs(c - p.shape[1] // 2)) == expect
    assert p[p.shape[0] // 2, p.shape[1] // 2] == pytest.approx(0, abs=1e-9 * p.max())  # mean removed


def test_planes_are_the_3d_psd_summed_over_the_third_axis(rng):
    v = rng.normal(size=(Z, Y, X))
    P = np.abs(np.fft.fftshift(np.fft.fftn(v - v.mean()))) ** 2
    planes = psd_planes(v, chunk_voxels=3 * X * Y)  # several chunks
    np.testing.assert_allclose(planes["kx_kz"], P.sum(1), rtol=1e-10)
    np.testing.assert_allclose(planes["ky_kz"], P.sum(2), rtol=1e-10)
    np.testing.assert_allclose(planes["kx_ky"], P.sum(0), rtol=1e-10)


def test_frequencies_are_dc_centred():
    f = frequencies(8, 1e-8)
    assert f[4] == 0 and f[5] == pytest.approx(1 / (8 * 1e-8))

import numpy as np
import pytest

from rapidtomo.physics.geometry import (angle_set_deg, beam_grid, detector_distance_for_pixel, object_pixel_size_m,
                                        wavelength_m)


def test_wavelength_and_paper_pixel():
    assert wavelength_m(8.8) == pytest.approx(1.4089e-10, rel=1e-3)
    assert wavelength_m(12.398) == pytest.approx(1e-10, rel=1e-3)
    # the paper's Velociprobe: 8.8 keV, 1.92 m, 75 µm pixels, 256 px → ≈ 14 nm
    assert object_pixel_size_m(8.8, 1.92, 75e-6, 256) == pytest.approx(14.09e-9, rel=1e-3)
    d = detector_distance_for_pixel(8.8, 28e-9, 75e-6, 32)
    assert object_pixel_size_m(8.8, d, 75e-6, 32) == pytest.approx(28e-9)


def test_angle_sets():
    a = angle_set_deg(21, 140.8)
    assert len(a) == 21 and a[0] == pytest.approx(-70.4) and a[-1] == pytest.approx(70.4)
    assert np.allclose(np.diff(a), 140.8 / 20)
    assert angle_set_deg(1, 140.8).tolist() == [0.0]
    with pytest.raises(ValueError):
        angle_set_deg(0, 10)


@pytest.mark.parametrize("shape", [(8, 16, 32), (7, 15, 33), (32, 64, 256)])
def test_beam_grid_covers_all_angles_and_roundtrips_positions(shape):
    grid = beam_grid(shape, (1e-8, 1e-8, 1e-8), (8, 8), 5, multiple=4)
    Z, Y, X = shape
    assert grid.width >= np.hypot(Z, X) + 8 and (grid.width - X) % 2 == 0 and (grid.height - Y) % 2 == 0
    tl = np.array([[0, 0], [grid.height - 8, grid.width - 8], [2, 4]])
    np.testing.assert_array_equal(grid.top_left(grid.positions_m(tl, (8, 8)), (8, 8)), tl)
    with pytest.raises(ValueError):
        grid.top_left(np.array([[0.0, grid.width * 1e-8]]), (8, 8))


def test_top_left_keeps_fractions_and_snaps_rounding_noise():
    grid = beam_grid((8, 16, 32), (1e-8, 1e-8, 1e-8), (8, 8), 5, multiple=4)
    tl = np.array([[2.25, 3.0], [4.0, 7.5]])
    got = grid.top_left(grid.positions_m(tl, (8, 8)) * (1 + 1e-12), (8, 8))
    np.testing.assert_allclose(got, tl, rtol=0, atol=1e-9)
    assert got[0, 1] == 3.0 and got[1, 0] == 4.0  # integers stay exact: no Fourier shift for them


def test_beam_grid_needs_square_pixels():
    with pytest.raises(ValueError):
        beam_grid((4, 4, 4), (1e-8, 2e-8, 1e-8), (2, 2), 1)


@pytest.mark.parametrize("L", [1, 2, 5])
def test_first_slab_centre_is_symmetric_with_the_last_about_the_axis(L):
    g = beam_grid((6, 4, 20), (2e-8, 1e-8, 1e-8), (8, 8), L)
    for theta in (0.0, 0.5, -1.1):
        first, dz = g.first_slab_m(theta), g.slab_thickness_m(theta)
        assert first - dz / 2 == pytest.approx(-g.extent_m(theta) / 2)  # the first slab starts at the support
        assert first + (L - 1) * dz == pytest.approx(-first)  # the last slab's centre mirrors it

"""Alignment of phase projections: known sub-pixel shifts and an axis offset found again, nothing moved when
nothing drifted, and the split of shifts into what the projections can and cannot tell apart."""
import dataclasses

import numpy as np
import pytest

from rapidtomo.phantom import synthetic_ic
from rapidtomo.physics.geometry import angle_set_deg, beam_grid, split_sample_shifts
from rapidtomo.recon.alignment import align_projections, displacement_px, shift_projections
from rapidtomo.recon.projections import ideal_projections
from rapidtomo.simulate import sample_shifts_px

SHAPE = (12, 16, 64)


@pytest.fixture(scope="module")
def still():
    """Ideal projections of a small IC on a slice grid with room for drifts, and their angles and grid."""
    ph = synthetic_ic(SHAPE, (28e-9,) * 3, seed=2)
    grid = beam_grid(SHAPE, ph.voxel_size_m, (16, 16), 1)
    grid = dataclasses.replace(grid, height=grid.height + 12, width=grid.width + 16)
    angles = angle_set_deg(40, 140.8)
    top = (grid.height - SHAPE[1]) // 2
    P = np.zeros((len(angles),) + grid.slice_shape, np.float32)
    P[:, top:top + SHAPE[1]] = ideal_projections(ph, angles, grid)
    return ph, grid, angles, P


def test_split_sample_shifts_tells_translation_axis_and_drift_apart():
    angles = angle_set_deg(30, 140.8)
    th = np.deg2rad(angles)
    drift = sample_shifts_px(angles, 2.0, 0.0, np.random.default_rng(0))
    ty, tz, tx, a = 0.7, -1.2, 2.1, 3.3
    shifts = drift + np.stack([np.full_like(th, ty), a + tx * np.cos(th) + tz * np.sin(th)], 1)
    parts = split_sample_shifts(shifts, angles)
    np.testing.assert_allclose(parts.translation, [ty, tz, tx], atol=1e-9)
    assert parts.axis_offset == pytest.approx(a, abs=1e-9)
    np.testing.assert_allclose(parts.drift, drift, atol=1e-9)


def test_simulated_drift_has_no_rigid_part_and_the_largest_is_the_setting():
    angles = angle_set_deg(25, 140.8)
    s = sample_shifts_px(angles, 5.0, 3.0, np.random.default_rng(4))
    np.testing.assert_allclose(np.abs(s - [0, 3]).max(0), [5.0, 5.0])
    parts = split_sample_shifts(s, angles)
    np.testing.assert_allclose(parts.translation, 0, atol=1e-9)
    assert parts.axis_offset == pytest.approx(3.0)


def test_registration_finds_subpixel_displacements_within_its_reach(still):
    *_, P = still
    img = P[7]
    for d in (0.3, -1.45, 1.8):
        moved = shift_projections(img[None], [[0.0, d]])[0]
        assert displacement_px(img, moved, 2.0) == pytest.approx(d, abs=0.1)
    # a residual phase ramp in one image does not pull it
    ramp = 0.002 * np.arange(img.shape[1]) * img.max()
    assert displacement_px(img, shift_projections(img[None], [[0.0, 0.6]])[0] + ramp, 2.0) == pytest.approx(0.6, abs=0.1)


def test_recovers_known_subpixel_drifts_and_the_rotation_centre(still):
    ph, grid, angles, P = still
    rng = np.random.default_rng(1)
    true = sample_shifts_px(angles, 5.0, 2.6, rng)  # fractions of a pixel everywhere
    moved = shift_projections(P, true)
    # noise and a residual offset per projection (imperfect ramp removal) spoil the centre of mass
    moved += rng.normal(0, 0.05 * moved.max(), moved.shape).astype(np.float32)
    moved += rng.uniform(-0.02, 0.02, (len(P), 1, 1)).astype(np.float32) * moved.max()
    aligned, al = align_projections(moved, angles, ph.shape, ph.voxel_size_m, grid, show_progress=False)
    err = al.errors_px(true, angles)
    assert err["y"] < 0.1 and err["x"] < 0.25, err
    assert al.axis_offset_px == pytest.approx(2.6, abs=0.2)
    assert aligned.shape == (len(P), SHAPE[1], grid.width)


def test_zero_drift_gives_zero_correction(still):
    ph, grid, angles, P = still
    aligned, al = align_projections(P, angles, ph.shape, ph.voxel_size_m, grid, show_progress=False)
    assert np.abs(al.shift_px).max() < 0.06 and abs(al.axis_offset_px) < 0.03
    top = (grid.height - SHAPE[1]) // 2
    np.testing.assert_allclose(aligned, P[:, top:top + SHAPE[1]], atol=0.05 * P.max())


def test_too_few_angles_are_refused(still):
    ph, grid, angles, P = still
    with pytest.raises(ValueError, match="at least 4 angles"):
        align_projections(P[:3], angles[:3], ph.shape, ph.voxel_size_m, grid, show_progress=False)

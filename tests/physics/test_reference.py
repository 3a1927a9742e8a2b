"""The simulator's reference forward model: exact where it must be, converged, and not the reconstruction's."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, map_coordinates, spline_filter

from rapidtomo.physics import reference as ref
from rapidtomo.physics.geometry import beam_grid, wavelength_m
from rapidtomo.physics.multislice import Multislice, forward_intensity
from rapidtomo.physics.operator import PtychoTomoOperator
from rapidtomo.physics.probe import probe_modes, zone_plate_probe
from rapidtomo.physics.scanning import scan_positions

N, D = 32, 28e-9
LAM = wavelength_m(8.8)
SHAPE = (12, 24, 48)


def setup(volume):
    grid = beam_grid(SHAPE, (D,) * 3, (N, N), 1, multiple=4)
    top_left = scan_positions(grid.slice_shape, (N, N), 6)
    probe = probe_modes(zone_plate_probe(N, D, 8.8), 2)
    return grid, top_left, probe, ref.spline_volume(volume), ref.upsample_probe(probe)


def blob(detail_sigma, seed=0):
    """A weak object inside the volume (zero at its faces) with random texture of a given smoothness."""
    z, y, x = np.indices(SHAPE).astype(float)
    env = np.exp(-((z - 5.5) ** 2 / 8 + (y - 11.5) ** 2 / 32 + (x - 23.5) ** 2 / 128))
    tex = np.random.default_rng(seed).normal(size=SHAPE)
    tex = gaussian_filter(tex, detail_sigma) if detail_sigma else tex
    v = env * (1 + 0.8 * tex / tex.std())
    return v * 0.05 / v.sum(0).max()


def test_upsampled_probe_keeps_the_far_field_and_the_samples():
    probe = probe_modes(zone_plate_probe(N, D, 8.8), 2)
    fine = ref.upsample_probe(probe)
    np.testing.assert_allclose(fine[:, ::2, ::2] * 4, probe, atol=1e-12 * np.abs(probe).max())
    kw = dict(wavelength_m=LAM, slice_spacing_m=1e-6)
    coarse_I = forward_intensity(np.ones((1, N, N)), probe, np.zeros((1, 2), int), pixel_size_m=D, **kw)
    fine_I = forward_intensity(np.ones((1, 2 * N, 2 * N)), fine, np.zeros((1, 2), int), pixel_size_m=D / 2, **kw)
    np.testing.assert_allclose(fine_I[0, N // 2:N // 2 + N, N // 2:N // 2 + N], coarse_I[0], rtol=1e-9,
                               atol=1e-12 * coarse_I.max())


@pytest.mark.parametrize("theta", [0.0, 0.7])
def test_slab_phases_are_line_integrals_of_the_cubic_spline(theta):
    v = blob(1.0)
    grid, *_ , fine, _ = setup(v)
    phi, slabs = ref.slab_phases(fine, theta, grid, 4096)  # one slab: the whole line integral
    assert slabs.n_slabs == 1
    # independent route: scipy's cubic spline at the same fine beam samples, summed along the beam
    pad = 8
    coef = spline_filter(np.pad(v, pad), order=3, mode="mirror")
    db = ref.beam_step_m(grid)
    nb = round(slabs.thickness_m / db)
    b = (np.arange(nb) + 0.5 - nb / 2) * db
    rows = np.array([40, 47, 52])  # fine rows through the volume
    cols = np.array([60, 84, 101])  # fine columns through the volume (width 2·84)
    xp = (cols / 2 - (grid.width - 1) / 2) * D
    B, XP = np.meshgrid(b, xp, indexing="ij")
    c, s = np.cos(theta), np.sin(theta)
    fz, fx = (XP * s + B * c) / D + 5.5 + pad, (XP * c - B * s) / D + 23.5 + pad
    for r in rows:
        fy = np.full_like(fz, r / 2 - (grid.height - SHAPE[1]) / 2 + pad)
        line = map_coordinates(coef, [fz, fy, fx], order=3, prefilter=False, mode="constant").sum(0) * db / D
        np.testing.assert_allclose(phi[0, r, cols], line, rtol=1e-5, atol=1e-7)


def test_at_normal_incidence_the_fine_object_passes_through_the_voxels():
    v = blob(1.0)
    grid, *_, fine, _ = setup(v)
    phi, _ = ref.slab_phases(fine, 0.0, grid, 4096)
    pad_y, pad_x = (grid.height - SHAPE[1]) // 2, (grid.width - SHAPE[2]) // 2
    coarse = phi[0, ::2, ::2][pad_y:pad_y + SHAPE[1], pad_x:pad_x + SHAPE[2]]
    np.testing.assert_allclose(coarse, v.sum(0), atol=1e-6 * v.sum(0).max())


def test_fine_model_agrees_with_the_operator_on_a_smooth_object_and_departs_with_detail():
    diffs = []
    for sigma in (3.0, 0.0):
        v = blob(sigma)
        grid, top_left, probe, fine, fine_probe = setup(v)
        theta = 0.6
        I_fine = ref.angle_intensities(fine, None, theta, grid, fine_probe, top_left, LAM, 8)
        g = beam_grid(SHAPE, (D,) * 3, (N, N), 8, multiple=4)
        H = PtychoTomoOperator(g, probe, LAM, dtype=torch.float64).at(theta)
        op = lambda vol: H.intensities(torch.tensor(vol), torch.tensor(top_left)).numpy()  # noqa: E731
        I_op, I_air = op(v), op(np.zeros_like(v))
        assert np.linalg.norm(I_fine - I_op) / np.linalg.norm(I_op) < 1e-3
        diffs.append(np.linalg.norm(I_fine - I_op) / np.linalg.norm(I_op - I_air))
    # measured 0.057 (smooth) and 0.098 (voxel-scale texture): the models differ most on fine detail
    assert diffs[1] > 1.3 * diffs[0]


@pytest.mark.parametrize("theta", [0.6, 1.2])
def test_operator_and_reference_share_the_probe_plane(theta):
    """Both models take the probe at b = 0: the operator propagates it to its first slab per angle.

    At a long wavelength the depth of field 2·D²/λ (0.5 µm) is shorter than the distance from the
    axis to the first slab (0.45–0.6 µm), so a probe applied at the first slab unpropagated (the
    old operator) is a different probe at each angle: measured 0.14 (θ = 0.6) and 0.17 (θ = 1.2)
    of the sample's signal against 0.053 and 0.056 propagated, the discretisation floor."""
    lam = 3e-9
    v = blob(3.0)
    grid, top_left, probe, fine, fine_probe = setup(v)
    air = ref.FineVolume(np.zeros_like(fine.coef), fine.padded_shape)
    I_fine, I_air = (ref.angle_intensities(f, None, theta, grid, fine_probe, top_left, lam, 8) for f in (fine, air))
    H = PtychoTomoOperator(beam_grid(SHAPE, (D,) * 3, (N, N), 8, multiple=4), probe, lam, dtype=torch.float64).at(theta)
    tl = torch.tensor(top_left)
    unpropagated = Multislice(torch.tensor(probe), wavelength_m=lam, pixel_size_m=D, slice_spacing_m=H.slice_spacing_m)
    signal = np.linalg.norm(I_fine - I_air)
    after = np.linalg.norm(H.intensities(torch.tensor(v), tl).numpy() - I_fine) / signal
    before = np.linalg.norm(unpropagated.intensities(H.transmission(torch.tensor(v)), tl).numpy() - I_fine) / signal
    assert after < 0.08 and after < 0.5 * before


def test_slabs_converge_and_the_chosen_thickness_meets_the_tolerance():
    v = blob(0.0) * 20  # a strong object (~1 rad), where slab thickness matters
    grid, top_left, _, fine, fine_probe = setup(v)
    central = top_left[::7][:12]
    air = ref.FineVolume(np.zeros_like(fine.coef), fine.padded_shape)
    free = ref.angle_intensities(air, None, 1.2, grid, fine_probe, central, LAM, 32)
    I = {k: ref.angle_intensities(fine, None, 1.2, grid, fine_probe, central, LAM, k) for k in (32, 16, 8, 4)}
    change = [np.linalg.norm(I[k] - I[k // 2]) / np.linalg.norm(I[k // 2] - free) for k in (32, 16, 8)]
    assert change[0] > change[1] > change[2]  # refining the slabs converges
    k, got = ref.converged_slab_samples(fine, None, [1.2], grid, fine_probe, central, LAM, tolerance=change[1] * 1.01,
                                        start=32)
    assert k == 16 and got == pytest.approx(change[1], rel=1e-6)


def test_fine_model_agrees_with_the_operator_at_fractional_positions():
    # the fine grid cuts at 2x the coarse corner (fine fractions 0, 0.5 here; 0.3 → 0.6) and the
    # operator shifts its probe on the coarse grid: they must agree as at integer corners
    v = blob(3.0)
    grid, top_left, probe, fine, fine_probe = setup(v)
    inner = top_left[(top_left > 0).all(1) & (top_left < np.array(grid.slice_shape) - N).all(1)]
    tl = inner[::2][:10] + np.array([0.25, 0.5])
    tl[1::2] += [0.3, -0.3]
    theta = 0.6
    I_fine = ref.angle_intensities(fine, None, theta, grid, fine_probe, tl, LAM, 8)
    g = beam_grid(SHAPE, (D,) * 3, (N, N), 8, multiple=4)
    H = PtychoTomoOperator(g, probe, LAM, dtype=torch.float64).at(theta)  # both take the probe at b = 0
    I_op = H.intensities(torch.tensor(v), torch.tensor(tl)).numpy()
    I_rounded = H.intensities(torch.tensor(v), torch.tensor(np.rint(tl))).numpy()
    err = np.linalg.norm(I_fine - I_op) / np.linalg.norm(I_op)
    assert err < 1e-3
    assert np.linalg.norm(I_fine - I_rounded) / np.linalg.norm(I_op) > 3 * err


@pytest.mark.parametrize("theta", [0.0, 0.7])
def test_a_shifted_sample_is_the_same_spline_at_shifted_points(theta):
    # half-pixel shifts move the fine grid by whole fine samples: the slabs must move with them exactly
    v = blob(1.0)
    grid, *_, fine, _ = setup(v)
    still, _ = ref.slab_phases(fine, theta, grid, 8)
    moved, _ = ref.slab_phases(fine, theta, grid, 8, shift_px=(1.5, -2.5))
    f = ref.OVERSAMPLING
    np.testing.assert_allclose(moved, np.roll(still, (round(1.5 * f), round(-2.5 * f)), axis=(1, 2)),
                               atol=1e-6 * np.abs(still).max())
    # and a fraction of a fine sample is the spline between them (the line integral keeps its total)
    part, _ = ref.slab_phases(fine, theta, grid, 8, shift_px=(0.3, 0.2))
    assert part.sum() == pytest.approx(still.sum(), rel=1e-4)
    assert not np.allclose(part, still, atol=1e-3 * np.abs(still).max())

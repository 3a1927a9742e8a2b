"""Per-angle ptychography and the two-step pipeline on simulated scans."""
import h5py
import numpy as np
import pytest
import torch

from rapidtomo.io import Volume
from rapidtomo.phantom import synthetic_ic
from rapidtomo.physics.geometry import beam_grid
from rapidtomo.recon import TwoStepSettings, two_step
from rapidtomo.recon.projections import ideal_projections
from rapidtomo.recon.ptychography import illumination, orthogonalize_modes, reconstruct_angles
from rapidtomo.recon.two_step import phase_projections, probe_angle_indices, read_probe, retrieve_probe
from rapidtomo.simulate import SimulateSettings, simulate


def pcc(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


def small_scans(n_nominal=3, photons=0.0):
    ph = synthetic_ic((12, 16, 64), (28e-9,) * 3, seed=2)
    s = SimulateSettings(shape=ph.shape, n_nominal=n_nominal, n_reduced=2, photons=photons)
    return simulate(s, ph)


def test_ptychography_recovers_projected_phase_noiseless():
    ph, nom, _ = small_scans()
    P = phase_projections(nom, TwoStepSettings(epochs=15), probe=nom.true_probe)
    h = nom.intensities.shape[-1]
    grid = beam_grid(ph.shape, ph.voxel_size_m, (h, h), 1).covering(nom.positions_m, (h, h))
    ideal = ideal_projections(ph, nom.angles_deg, grid)
    assert P.shape == (nom.n_angles,) + grid.slice_shape
    pad = (grid.height - ph.shape[1]) // 2
    for i in range(nom.n_angles):
        lit = illumination(grid.top_left(nom.positions_m[i], (h, h)), nom.probe, grid.slice_shape)[pad:pad + 16]
        inside = lit > 0.1 * lit.max()
        assert pcc(P[i, pad:pad + 16][inside], ideal[i][inside]) >= 0.95


def test_cache_resumes_and_is_keyed_by_settings(tmp_path):
    _, nom, _ = small_scans(n_nominal=2, photons=1e5)
    cache = tmp_path / "c.h5"
    s = TwoStepSettings(epochs=2)
    first = phase_projections(nom, s, cache)
    with h5py.File(cache, "a") as f:
        f["angle_00000"][...] = 7.0  # a cached angle is reused as is
    again = phase_projections(nom, s, cache)
    assert np.all(again[0] == 7.0) and np.array_equal(again[1], first[1])
    other = phase_projections(nom, TwoStepSettings(epochs=3), cache)  # new settings: recomputed
    assert not np.all(other[0] == 7.0)
    cache.write_bytes(b"truncated")  # a corrupt cache is rebuilt
    np.testing.assert_array_equal(phase_projections(nom, TwoStepSettings(epochs=3), cache), other)


def test_worker_processes_give_the_same_projections():
    _, nom, _ = small_scans(n_nominal=2, photons=1e5)
    one = phase_projections(nom, TwoStepSettings(epochs=2, workers=1))
    two = phase_projections(nom, TwoStepSettings(epochs=2, workers=2))
    np.testing.assert_allclose(two, one, atol=1e-4)


def test_two_step_volume_on_nominal_grid_and_its_probe_file(tmp_path):
    ph, nom, _ = small_scans(n_nominal=4, photons=1e5)
    vol = two_step(nom, TwoStepSettings(epochs=5, probe_epochs=3, method="fbp"), probe_path=tmp_path / "p.h5")
    assert isinstance(vol, Volume) and vol.shape == ph.shape and vol.voxel_size_m == ph.voxel_size_m
    assert vol.attrs["method"] == "fbp" and vol.attrs["seconds_ptychography"] > 0
    assert vol.attrs["probe_angles_deg"] == nom.angles_deg[probe_angle_indices(nom.angles_deg, 3)].tolist()
    probe = read_probe(tmp_path / "p.h5")
    assert probe.shape == nom.probe.shape and not np.allclose(probe, nom.probe)


def test_probe_angles_spread_within_45_degrees():
    angles = np.linspace(-89, 89, 90)
    picks = angles[probe_angle_indices(angles, 3)]
    assert np.all(np.abs(picks - [-45, 0, 45]) <= 1.0)
    assert len(probe_angle_indices(np.array([0.0, 10.0]), 3)) == 2  # never the same angle twice


def test_orthogonalized_modes_keep_the_density_matrix():
    rng = np.random.default_rng(1)
    p = torch.as_tensor(rng.normal(size=(3, 8, 8)) + 1j * rng.normal(size=(3, 8, 8)))
    q = orthogonalize_modes(p)
    flat_p, flat_q = p.reshape(3, -1), q.reshape(3, -1)
    gram = (flat_q.conj() @ flat_q.T).numpy()
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-10 * np.abs(gram).max()
    assert np.all(np.diff(np.real(np.diag(gram))) <= 0)  # strongest first
    # the same mixed state: Σ_m P_m* P_m is unchanged
    np.testing.assert_allclose((flat_q.conj().T @ flat_q).numpy(), (flat_p.conj().T @ flat_p).numpy(), atol=1e-10)


def test_probe_refinement_from_a_wrong_guess_beats_the_fixed_guess():
    # noiseless, 3 angles solved jointly from the simulator's guess (defocus +30 %); against the
    # fixed guess, the retrieved probe is closer to the truth and gives better projections
    ph, nom, _ = small_scans()
    h = nom.intensities.shape[-1]
    grid = beam_grid(ph.shape, ph.voxel_size_m, (h, h), 1).covering(nom.positions_m, (h, h))
    tl = grid.top_left(nom.positions_m, (h, h))
    ideal = ideal_projections(ph, nom.angles_deg, grid)
    pad = (grid.height - ph.shape[1]) // 2
    kw = dict(epochs=30, refine_attenuation=False)
    thetas = np.deg2rad(nom.angles_deg)

    def score(phases):
        return np.mean([pcc(phases[i][pad:pad + 16], ideal[i]) for i in range(nom.n_angles)])

    fixed = reconstruct_angles(nom.intensities, nom.probe, tl, grid, thetas, nom.wavelength_m, **kw).phases
    refined, probe, _ = reconstruct_angles(nom.intensities, nom.probe, tl, grid, thetas, nom.wavelength_m,
                                        refine_probe=True, **kw)

    def density_error(p):
        a, b = p.reshape(len(p), -1), nom.true_probe.reshape(len(p), -1)
        return np.linalg.norm(a.conj().T @ a - b.conj().T @ b) / np.linalg.norm(b.conj().T @ b)

    assert density_error(probe) < 0.8 * density_error(nom.probe)
    assert score(refined) > score(fixed) + 0.1 and score(refined) > 0.9


@pytest.mark.slow
def test_golden_standard_of_the_default_ic_beats_the_baselines():
    # the default IC, a nominal scan without the edge-on views (docs/benchmarks.md): ~3-5 min on 2 cores
    ph, nom, red = simulate(SimulateSettings(n_nominal=90, theta_max_nominal_deg=178))
    golden = two_step(nom, TwoStepSettings())  # the probe retrieved from the scan's wrong guess
    fbp = two_step(red, TwoStepSettings(method="fbp"))
    # measured 0.890 (0.911 with the true probe; docs/benchmarks.md), on the fine simulator's data
    assert pcc(golden.data, ph.data) >= 0.87
    assert pcc(fbp.data, ph.data) < pcc(golden.data, ph.data) - 0.1


def test_ptychography_applies_the_probe_where_the_operator_does():
    # the probe is given at b = 0; ptychography's kernel (defocus + d_k) and the operator's
    # propagation to the first slab give the same field up to a global phase
    from rapidtomo.physics.operator import PtychoTomoOperator
    from rapidtomo.physics.probe import zone_plate_probe
    from rapidtomo.recon.ptychography import propagate_probe, relative_wavenumber
    lam, h = 3e-9, 16
    probe = torch.as_tensor(zone_plate_probe(h, 28e-9, 8.8)[None], dtype=torch.complex128)
    grid = beam_grid((12, 8, 48), (28e-9,) * 3, (h, h), 4)
    kz = relative_wavenumber((h, h), lam, grid.pixel_m)
    for theta in (0.0, 0.9):
        want = PtychoTomoOperator(grid, probe, lam, dtype=torch.float64).at(theta).multislice.probe
        got = propagate_probe(probe, kz, torch.tensor(grid.first_slab_m(theta), dtype=torch.float64))
        overlap = torch.vdot(got.ravel(), want.ravel())
        torch.testing.assert_close(got * overlap / overlap.abs(), want, atol=1e-9, rtol=0)
        assert float((got - probe).abs().max()) > 1e-3 * float(probe.abs().max())  # the planes do differ


def fast_scan(**kw):
    ph = synthetic_ic((8, 32, 64), (28e-9,) * 3, seed=2)
    s = SimulateSettings(shape=ph.shape, n_nominal=1, n_reduced=1, model="fast", photons=1e6, **kw)
    return simulate(s, ph)[1]


def test_ptychography_ignores_masked_and_saturated_pixels():
    scan = fast_scan()
    h = scan.intensities.shape[-1]
    grid = beam_grid(scan.volume_shape, scan.voxel_size_m, (h, h), 1).covering(scan.positions_m, (h, h))
    tl = grid.top_left(scan.positions_m, (h, h))
    mask = np.zeros((h, h), bool)
    mask[3, 7] = mask[h // 2 + 2, h // 2] = True
    level = float(np.percentile(scan.intensities, 99.9))
    garbage = scan.intensities.copy()
    garbage[..., mask] = 1e5
    garbage[scan.intensities >= level] = 5 * level

    def solve(I, **kw):
        return reconstruct_angles(I, scan.true_probe, tl, grid, np.deg2rad(scan.angles_deg), scan.wavelength_m,
                                  epochs=1, **kw).phases

    clean = solve(scan.intensities, bad_pixels=mask, saturation_level=level)
    np.testing.assert_array_equal(solve(garbage, bad_pixels=mask, saturation_level=level), clean)
    assert np.abs(solve(garbage) - clean).max() > 0.01


def test_position_refinement_moves_positions_toward_the_truth():
    # the operator's own data (no model error), true probe: only the positions are wrong
    scan = fast_scan(position_error_px=0.5)
    settings = TwoStepSettings(refine_positions=True, epochs=20)
    from rapidtomo.recon.two_step import ptychography_grid
    grid = ptychography_grid(scan, settings)
    h = scan.intensities.shape[-1]
    tl = grid.top_left(scan.positions_m, (h, h))
    true = tl + (scan.true_positions_m - scan.positions_m) / grid.pixel_m
    r = reconstruct_angles(scan.intensities, scan.true_probe, tl, grid, np.deg2rad(scan.angles_deg),
                           scan.wavelength_m, epochs=settings.epochs, refine_positions=True)

    # windows centred on the sample's rows (the others see mostly air, which holds no position information)
    on_sample = np.abs(scan.positions_m[0, :, 0]) < scan.volume_shape[1] * grid.pixel_m / 2

    def rms(c):
        e = (c - true)[0, on_sample]
        return np.sqrt(np.mean((e - e.mean(0)) ** 2))

    assert abs(r.top_left.mean(1) - tl.mean(1)).max() < 0.05  # the mean shift stays ~0 (0 but for the grid edges)
    print(f"position error on the sample: {rms(tl):.3f} px → {rms(r.top_left):.3f} px")
    assert rms(r.top_left) < 0.6 * rms(tl)


def test_two_step_of_a_streamed_scan_equals_the_in_memory_one(tmp_path, monkeypatch):
    from rapidtomo.io import Patterns, open_scan, write_scan
    from rapidtomo.recon.two_step import probe_angle_indices
    _, nom, _ = small_scans(n_nominal=4, photons=1e5)
    write_scan(tmp_path / "s.h5", nom)
    s = TwoStepSettings(epochs=2, probe_epochs=2, probe_angles=2, method="fbp", workers=1)
    in_memory = two_step(nom, s, cache_path=tmp_path / "a.cache.h5")
    reads = []
    real = Patterns.angle
    monkeypatch.setattr(Patterns, "angle", lambda self, i: (reads.append(i), real(self, i))[1])
    streamed = two_step(open_scan(tmp_path / "s.h5"), s, cache_path=tmp_path / "b.cache.h5")
    np.testing.assert_allclose(streamed.data, in_memory.data, rtol=1e-6, atol=1e-7 * np.abs(in_memory.data).max())
    # every angle once for the cache key and once for its ptychography, the probe's angles once more
    expected = np.full(4, 2)
    expected[probe_angle_indices(nom.angles_deg, 2)] += 1
    assert np.bincount(reads, minlength=4).tolist() == expected.tolist()

"""Per-angle ptychography and the two-step pipeline on simulated scans."""
import h5py
import numpy as np
import pytest

from rapidtomo.io import Volume
from rapidtomo.phantom import synthetic_ic
from rapidtomo.physics.geometry import beam_grid
from rapidtomo.recon import TwoStepSettings, two_step
from rapidtomo.recon.projections import ideal_projections
from rapidtomo.recon.ptychography import illumination
from rapidtomo.recon.two_step import phase_projections
from rapidtomo.simulate import SimulateSettings, simulate


def pcc(a, b):
    return np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]


def small_scans(n_nominal=3, photons=0.0):
    ph = synthetic_ic((12, 16, 64), (28e-9,) * 3, seed=2)
    s = SimulateSettings(shape=ph.shape, n_nominal=n_nominal, n_reduced=2, photons=photons)
    return simulate(s, ph)


def test_ptychography_recovers_projected_phase_noiseless():
    ph, nom, _ = small_scans()
    P = phase_projections(nom, TwoStepSettings(epochs=15))
    h = nom.intensities.shape[-1]
    grid = beam_grid(ph.shape, ph.voxel_size_m, (h, h), 1).covering(nom.positions_m, (h, h))
    ideal = ideal_projections(ph, nom.angles_deg, grid)
    pad = (grid.height - ph.shape[1]) // 2
    for i in range(nom.n_angles):
        lit = illumination(grid.top_left(nom.positions_m[i], (h, h)), nom.probe, grid.slice_shape)[pad:pad + 16]
        inside = lit > 0.1 * lit.max()
        assert pcc(P[i][inside], ideal[i][inside]) >= 0.95


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


def test_two_step_volume_on_nominal_grid():
    ph, nom, _ = small_scans(n_nominal=4, photons=1e5)
    vol = two_step(nom, TwoStepSettings(epochs=5, method="fbp"))
    assert isinstance(vol, Volume) and vol.shape == ph.shape and vol.voxel_size_m == ph.voxel_size_m
    assert vol.attrs["method"] == "fbp" and vol.attrs["seconds_ptychography"] > 0


@pytest.mark.slow
def test_golden_standard_of_the_default_ic_beats_the_baselines():
    # the default IC, a nominal scan without the edge-on views (docs/benchmarks.md): ~3-5 min on 2 cores
    ph, nom, red = simulate(SimulateSettings(n_nominal=90, theta_max_nominal_deg=178))
    golden = two_step(nom, TwoStepSettings())
    fbp = two_step(red, TwoStepSettings(method="fbp"))
    assert pcc(golden.data, ph.data) >= 0.9
    assert pcc(fbp.data, ph.data) < pcc(golden.data, ph.data) - 0.1

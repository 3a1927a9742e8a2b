"""The approximant: loss decrease, gradient check, recovery of a noiseless object, more angles help."""
import dataclasses

import numpy as np
import pytest
import torch

from rapidtomo.io import Volume
from rapidtomo.recon.approximant import ApproximantSettings, approximant, build_problem, dilate_z, loss_and_grad
from rapidtomo.simulate import SimulateSettings, simulate

Z, Y, X, L = 15, 32, 64, 5


def block_phantom(seed):
    """Random boxes of phase on a (15, 32, 64) grid of 28 nm voxels."""
    rng = np.random.default_rng(seed)
    v = np.zeros((Z, Y, X), np.float32)
    for _ in range(25):
        z, y, x = rng.integers(0, Z - 3), rng.integers(0, Y - 6), rng.integers(0, X - 6)
        v[z:z + rng.integers(2, 5), y:y + rng.integers(2, 8), x:x + rng.integers(2, 8)] += 0.05
    return Volume(v, (28e-9,) * 3)


def reduced_scan(phantom, n_angles, photons=0.0):
    """The simulated reduced scan with the true probe as ``probe``: the approximant gets the probe
    an experiment has after ptychography (the golden standard's retrieved one); a unit test of the
    approximant gives it the true probe, not the simulator's deliberately wrong guess."""
    s = SimulateSettings(shape=phantom.shape, n_nominal=1, n_reduced=n_angles, photons=photons, n_modes=2)
    scan = simulate(s, phantom)[2]
    scan.probe = scan.true_probe
    return scan


def truth_on_coarse_grid(v):
    """The phantom averaged onto the approximant's (L, Y/2, X/2) grid (phase density, arbitrary scale)."""
    zi = np.minimum((np.arange(Z) * L) // Z, L - 1)
    zb = np.stack([v[zi == k].mean(0) for k in range(L)])
    return zb.reshape(L, Y // 2, 2, X // 2, 2).mean((2, 4))


def coarse(a):
    n = a.shape[0]
    zi = np.minimum((np.arange(n) * L) // n, L - 1)
    return np.stack([a[zi == k].mean(0) for k in range(L)])


def pcc(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_loss_decreases_and_output_grid():
    ph = block_phantom(0)
    scan = reduced_scan(ph, 7, photons=1e5)
    vol = approximant(scan, ApproximantSettings(iterations=3))
    hist = vol.attrs["loss_history"]
    assert len(hist) == 4 and all(b < a for a, b in zip(hist, hist[1:]))
    assert vol.shape == (Z, Y // 2, X // 2)
    np.testing.assert_allclose(np.array(vol.extent_m), np.array(ph.extent_m))


def test_gradient_matches_finite_differences():
    scan = reduced_scan(block_phantom(1), 3)
    prob = build_problem(scan, ApproximantSettings(precision="float64"), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    phi = 0.05 * torch.rand((L, Y // 2, X // 2), dtype=torch.float64, generator=g)
    _, grad = loss_and_grad(phi, prob, batch=37)
    for _ in range(2):
        d = torch.randn(phi.shape, dtype=torch.float64, generator=g)
        eps = 1e-5
        fd = (loss_and_grad(phi + eps * d, prob, 37, with_grad=False)[0]
              - loss_and_grad(phi - eps * d, prob, 37, with_grad=False)[0]) / (2 * eps)
        assert abs(fd - float((grad * d).sum())) < 1e-6 * abs(fd)


def test_batching_does_not_change_loss_or_gradient():
    scan = reduced_scan(block_phantom(2), 2)
    prob = build_problem(scan, ApproximantSettings(precision="float64"), torch.device("cpu"))
    phi = 0.03 * torch.ones((L, Y // 2, X // 2), dtype=torch.float64)
    l1, g1 = loss_and_grad(phi, prob, batch=10_000)
    l2, g2 = loss_and_grad(phi, prob, batch=13)
    assert abs(l1 - l2) < 1e-10 * l1
    torch.testing.assert_close(g1, g2)


def test_masked_and_saturated_pixels_do_not_enter_the_loss():
    # garbage at bad pixels and above the saturation level changes nothing; unmasked, it does
    scan = reduced_scan(block_phantom(4), 2, photons=1e5)
    h = scan.intensities.shape[-1]
    phi = 0.03 * torch.ones((L, Y // 2, X // 2), dtype=torch.float64)
    mask = np.zeros((h, h), bool)
    mask[h // 2 - 3, h // 2 + 2] = mask[h // 2 + 1, h // 2 - 4] = True  # inside the central half

    def loss(intensities, mask, level=None):
        s = dataclasses.replace(scan, intensities=intensities, detector_mask=mask, saturation_level=level)
        prob = build_problem(s, ApproximantSettings(precision="float64"), torch.device("cpu"))
        return loss_and_grad(phi, prob, batch=64)

    garbage = scan.intensities.copy()
    garbage[..., mask] = 1e6
    level = float(np.percentile(scan.intensities, 99.9))
    above = scan.intensities >= level
    garbage[above] = 3 * level
    l0, g0 = loss(scan.intensities, mask, level)
    l1, g1 = loss(garbage, mask, level)
    assert l0 == l1 and torch.equal(g0, g1)
    l2, _ = loss(garbage, None)
    assert l2 > 10 * l0


def test_fractional_positions_are_used_not_rounded():
    scan = reduced_scan(block_phantom(5), 1)
    phi = 0.03 * torch.ones((L, Y // 2, X // 2), dtype=torch.float64)

    def loss(positions):
        prob = build_problem(dataclasses.replace(scan, positions_m=positions), ApproximantSettings(precision="float64"),
                             torch.device("cpu"))
        return loss_and_grad(phi, prob, batch=64, with_grad=False)[0], prob.top_left

    dx = 2 * scan.voxel_size_m[2]  # the coarse pixel
    l0, tl0 = loss(scan.positions_m)
    l1, tl1 = loss(scan.positions_m + 0.3 * dx)
    torch.testing.assert_close((tl1 - tl0) % 1, torch.full_like(tl0, 0.3))  # (the grid may grow by whole pixels)
    assert l1 != l0


def test_noiseless_recovery_and_more_angles_help():
    ph = block_phantom(3)
    truth = truth_on_coarse_grid(ph.data)
    settings = ApproximantSettings(iterations=30)
    many = pcc(coarse(approximant(reduced_scan(ph, 21), settings).data), truth)
    few = pcc(coarse(approximant(reduced_scan(ph, 3), settings).data), truth)
    assert many >= 0.8
    assert many > few + 0.05


def test_dilation_keeps_line_integrals():
    c = np.random.default_rng(0).random((5, 3, 4)).astype(np.float32)
    d = dilate_z(c, 23)
    assert d.shape == (23, 3, 4)
    np.testing.assert_allclose(d.sum(0), c.sum(0), rtol=1e-6)
    np.testing.assert_array_equal(d[:5], np.repeat(d[:1], 5, 0))  # 23 = 5+5+5+4+4: repeats


def test_output_slices_must_not_be_fewer_than_the_slabs():
    assert ApproximantSettings(n_slabs=5, output_slices=5).output_slices == 5
    with pytest.raises(ValueError, match="output_slices = 4 is fewer than n_slabs = 5"):
        ApproximantSettings(n_slabs=5, output_slices=4)
    with pytest.raises(ValueError, match="fewer than n_slabs"):
        ApproximantSettings(output_slices=3)  # the default 5 slabs


def test_streamed_scan_gives_the_in_memory_approximant_holding_at_most_the_allowed_angles(tmp_path, monkeypatch):
    from rapidtomo.io import Patterns, open_scan, write_scan
    scan = reduced_scan(block_phantom(4), 6, photons=1e5)
    write_scan(tmp_path / "s.h5", scan)
    s = ApproximantSettings(iterations=2)
    in_memory = approximant(scan, s)
    n_pos, h, w = scan.intensities.shape[1:]
    half_angle = n_pos * (h // 2) * (w // 2) * 4
    reads = []
    real = Patterns.angle
    monkeypatch.setattr(Patterns, "angle", lambda self, i: (reads.append(i), real(self, i))[1])
    lazy = open_scan(tmp_path / "s.h5")
    lazy.probe = lazy.true_probe
    streamed = approximant(lazy, s.model_copy(update={"patterns_memory_gb": 2.5 * half_angle / 1e9}))
    np.testing.assert_allclose(streamed.data, in_memory.data, rtol=1e-6, atol=1e-7 * np.abs(in_memory.data).max())
    assert streamed.attrs["loss_history"] == pytest.approx(in_memory.attrs["loss_history"], rel=1e-6)
    counts = np.bincount(reads, minlength=6)
    assert counts[:2].tolist() == [1, 1]  # two angles fit in the memory allowed: read once and held
    evaluations = counts[2]  # the others are read again at every evaluation of the loss, one at a time
    assert evaluations >= 2 * 2 + 1 and np.all(counts[2:] == evaluations)
    reads.clear()
    approximant(open_scan(tmp_path / "s.h5"), s)  # all fit (the default): every angle read once
    assert sorted(reads) == list(range(6))

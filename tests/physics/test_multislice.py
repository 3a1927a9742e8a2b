"""The multislice model against an independent plain-numpy reference, and its invariants."""
import numpy as np
import pytest
import torch

from rapidtomo.physics.multislice import exit_waves, forward_intensity, propagate

LAM, PIX = 1.409e-10, 14e-9


def reference_intensity(slices, probe, positions, lam, pixel, dz):
    """Eq. 1–2 written out: loop over positions and modes, numpy FFTs, float64."""
    L = slices.shape[0]
    M, h, w = probe.shape
    fy, fx = np.fft.fftfreq(h, d=pixel), np.fft.fftfreq(w, d=pixel)
    out = np.zeros((len(positions), h, w))
    for j, (r, c) in enumerate(positions):
        for m in range(M):
            psi = probe[m] * slices[0, r:r + h, c:c + w]
            for l in range(1, L):
                spec = np.fft.fft2(psi)
                for a in range(h):
                    for b in range(w):
                        q = 1 / lam**2 - fy[a] ** 2 - fx[b] ** 2
                        spec[a, b] *= np.exp(2j * np.pi * dz * np.sqrt(q)) if q > 0 else 0
                psi = np.fft.ifft2(spec) * slices[l, r:r + h, c:c + w]
            out[j] += np.abs(np.fft.fftshift(np.fft.fft2(psi))) ** 2
    return out


def random_case(rng, L, M, h=16, H=40, N=5):
    slices = np.exp(1j * rng.uniform(0, 1.0, (L, H, H + 3)) - rng.uniform(0, 0.1, (L, H, H + 3)))
    probe = rng.normal(size=(M, h, h)) + 1j * rng.normal(size=(M, h, h))
    pos = np.stack([rng.integers(0, H - h + 1, N), rng.integers(0, H + 3 - h + 1, N)], -1)
    return slices, probe, pos


@pytest.mark.parametrize("L,M", [(1, 1), (1, 3), (3, 1), (4, 2)])
def test_matches_reference_float64(rng, L, M):
    slices, probe, pos = random_case(rng, L, M)
    dz = 2e-6  # a large Δz so that propagation matters
    ref = reference_intensity(slices, probe, pos, LAM, PIX, dz)
    got = forward_intensity(slices, probe, pos, wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=dz)
    assert got.dtype == np.float64
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-10


def test_near_field_aliasing_case_has_evanescent_cut(rng):
    # pixel below λ/2 makes some frequencies evanescent: they must be dropped, not grow
    slices, probe, pos = random_case(rng, 2, 1)
    got = forward_intensity(slices, probe, pos, wavelength_m=1e-9, pixel_size_m=0.3e-9, slice_spacing_m=1e-9)
    ref = reference_intensity(slices, probe, pos, 1e-9, 0.3e-9, 1e-9)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-10


def test_parseval_energy(rng):
    slices, probe, pos = random_case(rng, 3, 2)
    t, p, q = torch.from_numpy(slices), torch.from_numpy(probe), torch.from_numpy(pos)
    psi = exit_waves(t, p, q, wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    I = forward_intensity(slices, probe, pos, wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    h, w = probe.shape[-2:]
    np.testing.assert_allclose(I.sum(axis=(1, 2)), h * w * (psi.abs() ** 2).sum(dim=(1, 2, 3)).numpy(), rtol=1e-12)


def test_pure_phase_slices_conserve_probe_energy_within_band(rng):
    # |t| = 1 and a band-limited probe: propagation is unitary on the band, so energy is conserved
    h = 32
    probe = np.zeros((1, h, h), complex)
    spec = np.zeros((h, h), complex)
    spec[:4, :4] = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    probe[0] = np.fft.ifft2(spec)
    slices = np.ones((3, h, h), complex)
    I = forward_intensity(slices, probe, np.zeros((1, 2), int), wavelength_m=LAM, pixel_size_m=PIX,
                          slice_spacing_m=5e-6)
    np.testing.assert_allclose(I.sum(), h * h * np.sum(np.abs(probe) ** 2), rtol=1e-12)


def test_propagation_composes_and_zero_is_identity(rng):
    psi = rng.normal(size=(2, 24, 24)) + 1j * rng.normal(size=(2, 24, 24))
    kw = dict(wavelength_m=LAM, pixel_size_m=PIX)
    a_then_b = propagate(propagate(psi, 1.3e-6, **kw), 0.7e-6, **kw)
    np.testing.assert_allclose(a_then_b, propagate(psi, 2.0e-6, **kw), atol=1e-12)
    np.testing.assert_allclose(propagate(psi, 0.0, **kw), psi, atol=1e-12)


def test_torch_in_torch_out_float32_and_batching(rng):
    slices, probe, pos = random_case(rng, 3, 2, N=9)
    t = torch.from_numpy(slices.astype(np.complex64))
    p = torch.from_numpy(probe.astype(np.complex64))
    kw = dict(wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    I_all = forward_intensity(t, p, torch.from_numpy(pos), **kw)
    I_b = forward_intensity(t, p, torch.from_numpy(pos), batch_size=2, **kw)
    assert isinstance(I_all, torch.Tensor) and I_all.dtype == torch.float32 and I_all.shape == (9, 16, 16)
    torch.testing.assert_close(I_all, I_b)
    ref = forward_intensity(slices, probe, pos, **kw)
    assert np.linalg.norm(I_all.numpy() - ref) / np.linalg.norm(ref) < 1e-5


def test_window_outside_grid_is_refused(rng):
    slices, probe, _ = random_case(rng, 1, 1)
    with pytest.raises(ValueError):
        forward_intensity(slices, probe, np.array([[0, slices.shape[2] - 5]]), wavelength_m=LAM, pixel_size_m=PIX,
                          slice_spacing_m=1e-6)


def test_gradient_matches_finite_differences(rng):
    slices, probe, pos = random_case(rng, 2, 2, h=8, H=16, N=3)
    phase = torch.tensor(np.angle(slices), requires_grad=True)
    p = torch.from_numpy(probe)
    kw = dict(wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    target = torch.rand(3, 8, 8, dtype=torch.float64) * 50

    def loss(ph):
        return ((forward_intensity(torch.polar(torch.ones_like(ph), ph), p, torch.from_numpy(pos), **kw) - target) ** 2).sum()

    loss(phase).backward()
    d = torch.randn_like(phase)
    eps = 1e-6
    with torch.no_grad():
        fd = (loss(phase + eps * d) - loss(phase - eps * d)) / (2 * eps)
    assert abs(fd.item() - (phase.grad * d).sum().item()) < 1e-5 * abs(fd.item())


# --- sub-pixel positions ---------------------------------------------------------------------------

def band_limited(rng, shape, k, scale=1.0):
    """A complex field with spectrum only at |frequency index| ≤ k (periodic on its grid)."""
    spec = np.zeros(shape, complex)
    idx = np.r_[0:k + 1, -k:0]
    spec[np.ix_(idx, idx)] = scale * (rng.normal(size=(len(idx), len(idx))) + 1j * rng.normal(size=(len(idx), len(idx))))
    return np.fft.ifft2(spec) * shape[0] * shape[1]


def test_shift_probe_by_an_integer_is_a_roll(rng):
    from rapidtomo.physics.multislice import shift_probe
    p = torch.from_numpy(rng.normal(size=(2, 12, 10)) + 1j * rng.normal(size=(2, 12, 10)))
    got = shift_probe(p, torch.tensor([[3.0, -2.0]], dtype=torch.float64))[0]
    torch.testing.assert_close(got, torch.roll(p, (3, -2), dims=(-2, -1)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("rest", [(0.3, -0.45), (-0.2, 0.5), (0.0, 0.25)])
def test_fractional_corner_sees_the_object_between_pixels(rng, rest):
    # band-limited probe and slices, periodic on the window: the patterns at a fractional corner r
    # equal those of the probe on the object evaluated exactly at r + i (the sign of the shift)
    h, L, k = 16, 2, 2
    waves = [band_limited(rng, (h, h), k, 0.02) for _ in range(L)]
    probe = band_limited(rng, (h, h), 3)[None]

    def obj(l, y, x):  # the slices' trigonometric polynomial, evaluated anywhere
        ky, kx = np.fft.fftfreq(h) * h, np.fft.fftfreq(h) * h
        spec = np.fft.fft2(waves[l]) / h**2
        return 1 + np.einsum("ab,yxab->yx", spec, np.exp(2j * np.pi * (y[..., None, None] * ky[:, None]
                                                                     + x[..., None, None] * kx[None, :]) / h))

    H = 3 * h
    yy, xx = np.meshgrid(np.arange(H), np.arange(H), indexing="ij")
    slices = np.stack([obj(l, yy, xx) for l in range(L)])
    r = np.array([[h + rest[0], 5 + rest[1]]])
    got = forward_intensity(slices, probe, r, wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=2e-6)
    iy, ix = np.meshgrid(np.arange(h) + r[0, 0], np.arange(h) + r[0, 1], indexing="ij")
    exact = np.stack([obj(l, iy, ix) for l in range(L)])
    ref = reference_intensity(exact, probe, [(0, 0)], LAM, PIX, 2e-6)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-9


def test_shifted_probe_conserves_pattern_intensity(rng):
    h = 16
    probe = rng.normal(size=(2, h, h)) + 1j * rng.normal(size=(2, h, h))
    slices = np.exp(1j * rng.uniform(0, 2, (1, 40, 40)))  # pure phase: |t| = 1
    pos = np.array([[3.0, 4.0], [3.37, 4.0], [10.5, 7.81], [2.0, 19.49]])
    I = forward_intensity(slices, probe, pos, wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    np.testing.assert_allclose(I.sum(axis=(1, 2)), h * h * np.sum(np.abs(probe) ** 2), rtol=1e-12)


def test_gradient_in_position_matches_finite_differences(rng):
    from rapidtomo.physics.multislice import Multislice
    slices, probe, _ = random_case(rng, 3, 2, h=12, H=30, N=3)
    ms = Multislice(torch.from_numpy(probe), wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    t = torch.from_numpy(slices)
    weight = torch.from_numpy(rng.uniform(size=(3, 12, 12)))
    pos0 = torch.tensor([[5.2, 7.7], [10.1, 3.35], [8.0, 9.0]], dtype=torch.float64)

    def f(p):
        return (ms.intensities(t, p, backend="torch") * weight).sum()

    p = pos0.clone().requires_grad_(True)
    f(p).backward()
    eps = 1e-5
    fd = torch.zeros_like(pos0)
    for i in range(3):
        for j in range(2):
            d = torch.zeros_like(pos0)
            d[i, j] = eps
            fd[i, j] = (f(pos0 + d) - f(pos0 - d)) / (2 * eps)
    torch.testing.assert_close(p.grad, fd, rtol=1e-5, atol=1e-6 * float(fd.abs().max()))


def test_integer_float_positions_skip_the_shift_and_match_integer_ones(rng):
    slices, probe, pos = random_case(rng, 2, 2)
    a = forward_intensity(slices, probe, pos, wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    b = forward_intensity(slices, probe, pos.astype(float), wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    np.testing.assert_array_equal(a, b)


def test_exit_wave_derivatives_match_autograd(rng):
    from rapidtomo.physics.multislice import Multislice
    slices, probe, _ = random_case(rng, 3, 2, h=12, H=30, N=2)
    ms = Multislice(torch.from_numpy(probe), wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1e-6)
    t = torch.from_numpy(slices)
    pos = torch.tensor([[5.2, 7.7], [10.1, 3.35]], dtype=torch.float64)
    d = ms.exit_wave_derivatives(t, pos)
    for axis in range(2):
        e = torch.zeros_like(pos)
        e[:, axis] = 1.0
        _, jvp = torch.autograd.functional.jvp(lambda p: torch.view_as_real(ms.exit_waves(t, p)), pos, e)
        torch.testing.assert_close(torch.view_as_real(d[axis]), jvp, rtol=1e-9, atol=1e-9)

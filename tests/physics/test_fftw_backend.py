"""The FFTW engine of the forward model against the torch one, backend choice, and the fallback."""
import sys
import threading

import numpy as np
import pytest
import torch

from rapidtomo.physics import fftw_backend, multislice
from rapidtomo.physics.multislice import forward_intensity

pytest.importorskip("pyfftw")

LAM, PIX = 1.409e-10, 14e-9
KW = dict(wavelength_m=LAM, pixel_size_m=PIX, slice_spacing_m=1.5e-6)


def case(rng, L, M, h, w, N=11, dtype=np.complex128):
    H, W = h + 21, w + 26
    slices = np.exp(1j * rng.uniform(0, 1.0, (L, H, W)) - rng.uniform(0, 0.1, (L, H, W))).astype(dtype)
    probe = (rng.normal(size=(M, h, w)) + 1j * rng.normal(size=(M, h, w))).astype(dtype)
    pos = np.stack([rng.integers(0, H - h + 1, N), rng.integers(0, W - w + 1, N)], -1)
    pos[0] = (H - h, W - w)  # the last window that fits
    return slices, probe, pos


def engine(slices, probe, pos, **kw):
    """The FFTW engine called directly, with the propagator of the Multislice core."""
    prop = multislice.Multislice(probe, **KW).fftw_propagator(slices.dtype)
    return fftw_backend.forward_intensity(slices, probe, pos, propagator=prop, **kw)


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b))


@pytest.mark.parametrize("dtype,tol", [(np.complex64, 1e-5), (np.complex128, 1e-12)])
@pytest.mark.parametrize("window", [(16, 16), (15, 15), (15, 18)])
@pytest.mark.parametrize("L,M", [(1, 1), (1, 3), (3, 1), (3, 3)])
def test_fftw_equals_torch(rng, L, M, window, dtype, tol):
    slices, probe, pos = case(rng, L, M, *window, dtype=dtype)
    ref = forward_intensity(slices, probe, pos, backend="torch", **KW)
    got = forward_intensity(slices, probe, pos, backend="fftw", **KW)
    assert got.dtype == ref.dtype == np.dtype(dtype).type(0).real.dtype
    assert got.shape == ref.shape == (len(pos),) + window
    assert rel(got, ref) < tol
    # worker threads and short, padded batches give the same patterns
    for threads, bs in [(2, None), (2, 3), (1, 4)]:
        again = engine(slices, probe, pos, threads=threads, batch_size=bs)
        assert rel(again, ref) < tol


def test_single_position_and_no_positions(rng):
    slices, probe, pos = case(rng, 2, 2, 16, 16)
    one = forward_intensity(slices, probe, pos[:1], backend="fftw", **KW)
    assert rel(one, forward_intensity(slices, probe, pos[:1], backend="torch", **KW)) < 1e-12
    none = forward_intensity(slices, probe, pos[:0], backend="fftw", **KW)
    assert none.shape == (0, 16, 16)


def test_torch_cpu_without_grad_takes_fftw_and_returns_torch(rng, monkeypatch):
    slices, probe, pos = case(rng, 3, 2, 16, 16, dtype=np.complex64)
    calls = []
    real = fftw_backend.forward_intensity
    monkeypatch.setattr(fftw_backend, "forward_intensity", lambda *a, **k: calls.append(1) or real(*a, **k))
    t, p, q = torch.from_numpy(slices), torch.from_numpy(probe), torch.from_numpy(pos)
    I = forward_intensity(t, p, q, **KW)
    assert calls and isinstance(I, torch.Tensor) and I.dtype == torch.float32
    ref = forward_intensity(t, p, q, backend="torch", **KW)
    assert len(calls) == 1
    assert rel(I.numpy(), ref.numpy()) < 1e-5


def test_gradients_take_the_torch_path(rng, monkeypatch):
    slices, probe, pos = case(rng, 2, 2, 8, 8, N=3)
    monkeypatch.setattr(fftw_backend, "forward_intensity", lambda *a, **k: pytest.fail("FFTW used with autograd"))
    phase = torch.tensor(np.angle(slices), requires_grad=True)
    I = forward_intensity(torch.polar(torch.ones_like(phase), phase), torch.from_numpy(probe),
                          torch.from_numpy(pos), **KW)
    I.sum().backward()
    assert phase.grad is not None and torch.isfinite(phase.grad).all()
    with pytest.raises(ValueError):
        forward_intensity(torch.polar(torch.ones_like(phase), phase), torch.from_numpy(probe),
                          torch.from_numpy(pos), backend="fftw", **KW)


def test_environment_forces_torch(rng, monkeypatch):
    slices, probe, pos = case(rng, 2, 1, 8, 8, N=3)
    monkeypatch.setattr(fftw_backend, "forward_intensity", lambda *a, **k: pytest.fail("FFTW used"))
    monkeypatch.setenv(multislice.BACKEND_ENV, "torch")
    forward_intensity(slices, probe, pos, **KW)
    monkeypatch.setenv(multislice.BACKEND_ENV, "fast")
    with pytest.raises(ValueError):
        forward_intensity(slices, probe, pos, **KW)


def test_without_pyfftw_falls_back_to_torch(rng, monkeypatch):
    slices, probe, pos = case(rng, 3, 2, 16, 16)
    with_fftw = forward_intensity(slices, probe, pos, **KW)
    monkeypatch.setitem(sys.modules, "pyfftw", None)  # `import pyfftw` now raises ImportError
    monkeypatch.setattr(fftw_backend, "pyfftw", fftw_backend._UNLOADED)
    assert not fftw_backend.available()
    without = forward_intensity(slices, probe, pos, **KW)
    assert rel(without, with_fftw) < 1e-12
    with pytest.raises(RuntimeError):
        forward_intensity(slices, probe, pos, backend="fftw", **KW)


def test_concurrent_calls_share_the_engine_pool_safely(rng):
    fftw_backend.clear_plans()
    cases = [case(np.random.default_rng(s), 3, 2, 16, 16, N=40) for s in range(4)]
    refs = [forward_intensity(*c, backend="torch", **KW) for c in cases]
    got = [None] * len(cases)

    def go(i):
        got[i] = engine(*cases[i], threads=2, batch_size=4)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(cases))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for g, r in zip(got, refs):
        assert rel(g, r) < 1e-12

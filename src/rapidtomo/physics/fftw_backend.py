"""FFTW engine for the multislice forward model on the CPU, without autograd.

Same model as :class:`rapidtomo.physics.multislice.Multislice` (docs/conventions.md), for numpy
arrays, with the propagator it hands over (one kernel for both engines): positions are processed
in small batches whose working set ``(B, M, h, w)`` stays in the L2 cache; each batch runs in one
preallocated, aligned buffer with in-place FFTW plans (``FFTW_MEASURE``, made once per shape,
dtype and thread count and kept); the ``1/(h·w)`` of the inverse FFT is folded into the
propagator. Parallelism: ``threads`` worker threads, each with
single-threaded plans and its own buffer, take batches in turn (numpy and FFTW release the GIL), so
the elementwise products run in parallel too, and a busy core slows one worker down rather than
stalling a multithreaded FFT at every barrier.

:func:`available` says whether pyfftw can be imported; the caller falls back to torch otherwise.
"""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_UNLOADED = object()
#: the pyfftw module once loaded, None when it cannot be imported (it is optional: no wheel off
#: x86_64); imported on first use, as ``import pyfftw`` pulls in dask (about a second)
pyfftw = _UNLOADED


def _lib():
    global pyfftw
    if pyfftw is _UNLOADED:
        try:
            import pyfftw as lib
        except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
            lib = None
        pyfftw = lib
    return pyfftw

#: planner effort for new plans; FFTW_MEASURE takes ~0.1 s per new shape and pays off beyond a few
#: hundred patterns (plans are kept for the life of the process).
PLANNER_EFFORT = "FFTW_MEASURE"
#: target bytes of one batch's buffer (B, M, h, w): well inside a 4 MiB L2 with the patches beside it
BATCH_BYTES = 1 << 20


def available() -> bool:
    return _lib() is not None


def batch_positions(n_modes: int, window: tuple[int, int], itemsize: int, batch_bytes: int = BATCH_BYTES) -> int:
    """Positions per batch so that the batch buffer ``(B, M, h, w)`` is near ``batch_bytes``."""
    return max(1, int(batch_bytes // (n_modes * window[0] * window[1] * itemsize)))


class _Engine:
    """A batch buffer ``(B, M, h, w)`` with in-place forward/backward plans on it."""

    def __init__(self, shape: tuple[int, int, int, int], dtype, threads: int):
        lib = _lib()
        self.buf = lib.empty_aligned(shape, dtype=dtype)
        flags = (PLANNER_EFFORT, "FFTW_DESTROY_INPUT")
        kw = dict(axes=(-2, -1), flags=flags, threads=threads)
        self.fwd = lib.FFTW(self.buf, self.buf, direction="FFTW_FORWARD", **kw)
        self.bwd = lib.FFTW(self.buf, self.buf, direction="FFTW_BACKWARD", **kw)


_pool: dict[tuple, list[_Engine]] = {}
_pool_lock = threading.Lock()


def _acquire(shape, dtype, threads) -> _Engine:
    key = (shape, np.dtype(dtype).str, threads)
    with _pool_lock:
        free = _pool.get(key)
        if free:
            return free.pop()
    return _Engine(shape, dtype, threads)  # planning outside the lock; it joins the pool on release


def _release(engine: _Engine, threads: int) -> None:
    key = (engine.buf.shape, engine.buf.dtype.str, threads)
    with _pool_lock:
        _pool.setdefault(key, []).append(engine)


def clear_plans() -> None:
    """Forget the cached engines (buffers and plans)."""
    with _pool_lock:
        _pool.clear()


def _run_batch(eng: _Engine, windows, probe, prop, pos, out) -> None:
    """Intensities of ``len(pos)`` positions into ``out (n, h, w)``, fftshifted."""
    n = len(pos)
    L = windows.shape[0]
    M, h, w = probe.shape
    buf = eng.buf
    patches = windows[:, pos[:, 0], pos[:, 1]]  # (L, n, h, w) gather
    np.multiply(probe[None], patches[0][:, None], out=buf)
    for l in range(1, L):
        eng.fwd.execute()
        np.multiply(buf, prop, out=buf)
        eng.bwd.execute()
        np.multiply(buf, patches[l][:, None], out=buf)
    eng.fwd.execute()
    # Σ_modes |F|²: square the interleaved (re, im) floats in place, add the modes into mode 0
    # (contiguous adds), then add each (re², im²) pair straight into the fftshifted output
    f = buf.view(out.dtype)  # (n, M, h, 2w)
    np.square(f, out=f)
    acc = f[:, 0]
    for m in range(1, M):
        acc += f[:, m]
    sh, sw = h // 2, w // 2
    for (o_r, a_r), (o_c, a_c) in itertools.product(
            ((slice(sh, h), slice(0, h - sh)), (slice(0, sh), slice(h - sh, h))),
            ((slice(sw, w), (0, w - sw)), (slice(0, sw), (w - sw, w)))):
        c0, c1 = 2 * a_c[0], 2 * a_c[1]
        np.add(acc[:, a_r, c0:c1:2], acc[:, a_r, c0 + 1:c1:2], out=out[:, o_r, o_c])


def forward_intensity(slices: np.ndarray, probe: np.ndarray, positions: np.ndarray, *, propagator: np.ndarray,
                      threads: int = 1, batch_size: int | None = None) -> np.ndarray:
    """Far-field intensities ``(N, h, w)`` of the multislice model with FFTW.

    ``slices (L, H, W)`` and ``probe (M, h, w)`` complex64 or complex128 (same dtype), ``positions
    (N, 2)`` integer top-left corners inside the grid (not checked here). ``propagator (h, w)``:
    the transfer function P_Δz divided by ``h·w`` (the inverse FFT's normalisation), in the
    slices' dtype (:class:`rapidtomo.physics.multislice.Multislice` makes it). ``threads``
    workers; ``batch_size`` caps the cache-sized batch. Returns float32/float64.
    """
    if not available():
        raise RuntimeError("pyfftw is not installed")
    dtype = slices.dtype
    L = slices.shape[0]
    M, h, w = probe.shape
    pos = np.asarray(positions, dtype=np.intp)
    N = len(pos)
    real = np.empty(0, dtype).real.dtype
    out = np.empty((N, h, w), dtype=real)
    if N == 0:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(slices, (h, w), axis=(1, 2))  # (L, H-h+1, W-w+1, h, w)
    prop = np.asarray(propagator, dtype=dtype) if L > 1 else None
    B = batch_positions(M, (h, w), dtype.itemsize)
    if batch_size:
        B = min(B, int(batch_size))
    B = max(1, min(B, -(-N // max(1, threads))))
    starts = list(range(0, N, B))
    workers = max(1, min(threads, len(starts)))

    todo = iter(starts)
    lock = threading.Lock()

    def take():
        with lock:
            return next(todo, None)

    def work(k: int) -> None:
        eng = _acquire((B, M, h, w), dtype, 1)
        try:
            while (s := take()) is not None:
                n = min(B, N - s)
                if n == B:
                    _run_batch(eng, windows, probe, prop, pos[s:s + B], out[s:s + B])
                else:  # the last, short batch: pad with its last position (one plan shape per call)
                    p = np.concatenate([pos[s:], np.repeat(pos[-1:], B - n, axis=0)])
                    tmp = np.empty((B, h, w), dtype=real)
                    _run_batch(eng, windows, probe, prop, p, tmp)
                    out[s:] = tmp[:n]
        finally:
            _release(eng, 1)

    if workers == 1:
        work(0)
    else:
        with ThreadPoolExecutor(workers) as ex:
            for f in [ex.submit(work, k) for k in range(workers)]:
                f.result()
    return out

"""Throughput of the multislice forward model (diffraction patterns per second) vs the FFT floor.

For three geometries — the simulator's default (L=5 slices, M=2 modes, 32² patterns), the pty-chi
comparison's (L=5, M=3, 64²) and the paper's scale (L=5, M=12, 256²) — it times
``forward_intensity`` on the torch engine and on the FFTW engine (CPU, no autograd), alternating
them, median of ``--repeats`` runs each. The floor is the pattern rate if only the FFTs took time:
a pattern costs M·(2(L−1)+1) FFTs of h×w (propagation there and back between slices, then the far
field), 5·n·log2(n) flops each (n = h·w), at the batched FFT rate each library reaches on the same
sizes in the same run (torch: one ``fft2`` over the batch with the torch threads; FFTW: the best of
one plan with all threads and one single-thread plan per worker, run side by side, as the engine
does). With CUDA available the torch engine is also timed on the GPU.

Usage: python benchmarks/forward_model.py [--threads 2] [--repeats 7] [--only default,ptychi,paper]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import threading
import time

import numpy as np
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
from rapidtomo.physics import fftw_backend  # noqa: E402
from rapidtomo.physics.multislice import default_batch, forward_intensity  # noqa: E402

LAM, DZ = 1.409e-10, 784e-9
GEOMETRIES = {  # name: (L, M, h, N, slice grid H)
    "default": (5, 2, 32, 2000, 192),
    "ptychi": (5, 3, 64, 600, 256),
    "paper": (5, 12, 256, 24, 512),
}


def flops_per_pattern(L, M, h, w):
    n = h * w
    return M * (2 * (L - 1) + 1) * 5 * n * math.log2(n)


def median_time(fn, repeats, min_s=0.2):
    """Median seconds of one ``fn()`` call (each sample loops until ``min_s`` has passed)."""
    fn()
    samples = []
    for _ in range(repeats):
        k, t0 = 0, time.perf_counter()
        while True:
            fn()
            k += 1
            dt = time.perf_counter() - t0
            if dt >= min_s:
                break
        samples.append(dt / k)
    return float(np.median(samples))


def torch_fft_rate(shape, repeats, device="cpu"):
    """GFLOP/s of one batched complex64 ``fft2`` over ``shape = (B, M, h, w)``."""
    x = torch.randn(shape, dtype=torch.complex64, device=device)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)

    def go():
        torch.fft.fft2(x)
        sync()
    n = shape[-1] * shape[-2]
    return np.prod(shape[:-2]) * 5 * n * math.log2(n) / median_time(go, repeats) / 1e9


def fftw_rate(shape, threads, repeats):
    """GFLOP/s of in-place complex64 FFTW_MEASURE plans over ``shape``: max of one plan with
    ``threads`` threads and ``threads`` single-thread plans executed side by side."""
    import pyfftw
    flops = np.prod(shape[:-2]) * 5 * shape[-1] * shape[-2] * math.log2(shape[-1] * shape[-2])
    rates = {}
    bufs = [pyfftw.empty_aligned(shape, dtype=np.complex64) for _ in range(threads)]
    for b in bufs:
        b[:] = 1
    plan = pyfftw.FFTW(bufs[0], bufs[0], axes=(-2, -1), flags=("FFTW_MEASURE",), threads=threads)
    rates["one plan"] = flops / median_time(plan.execute, repeats) / 1e9
    plans = [pyfftw.FFTW(b, b, axes=(-2, -1), flags=("FFTW_MEASURE",), threads=1) for b in bufs]
    if threads > 1:
        reps = 8

        def side_by_side():
            ths = [threading.Thread(target=lambda p=p: [p.execute() for _ in range(reps)]) for p in plans]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
        rates["workers"] = threads * reps * flops / median_time(side_by_side, repeats) / 1e9
    return max(rates.values())


def make_case(L, M, h, N, H, dtype=np.complex64):
    rng = np.random.default_rng(0)
    slices = np.exp(1j * rng.uniform(0, 0.5, (L, H, H)) - rng.uniform(0, 0.02, (L, H, H))).astype(dtype)
    probe = (rng.normal(size=(M, h, h)) + 1j * rng.normal(size=(M, h, h))).astype(dtype)
    pos = rng.integers(0, H - h + 1, size=(N, 2))
    return slices, probe, pos


def bench(name, threads, repeats, cuda):
    L, M, h, N, H = GEOMETRIES[name]
    slices, probe, pos = make_case(L, M, h, N, H)
    t, p, q = torch.from_numpy(slices), torch.from_numpy(probe), torch.from_numpy(pos)
    kw = dict(wavelength_m=LAM, pixel_size_m=28e-9, slice_spacing_m=DZ)
    runs = {"torch": lambda: forward_intensity(t, p, q, backend="torch", **kw),
            "fftw": lambda: forward_intensity(t, p, q, backend="fftw", **kw)}
    a, b = runs["torch"](), runs["fftw"]()
    err = float(torch.linalg.norm(a - b) / torch.linalg.norm(a))
    samples = {k: [] for k in runs}
    for _ in range(repeats):  # alternate, so that load changes hit both alike
        for k, fn in runs.items():
            samples[k].append(median_time(fn, 1, min_s=0.5))
    rate = {k: N / float(np.median(v)) for k, v in samples.items()}
    fl = flops_per_pattern(L, M, h, h)
    bt = min(default_batch(M, (h, h), L), N)
    bf = fftw_backend.batch_positions(M, (h, h), 8)
    gflops = {"torch": torch_fft_rate((bt, M, h, h), repeats),
              "fftw": fftw_rate((bf, M, h, h), threads, repeats)}
    row = dict(name=name, L=L, M=M, h=h, N=N, rate=rate, floor={k: g * 1e9 / fl for k, g in gflops.items()},
               gflops=gflops, err=err)
    if cuda:
        tc, pc, qc = t.cuda(), p.cuda(), q.cuda()

        def gpu():
            forward_intensity(tc, pc, qc, backend="torch", **kw)
            torch.cuda.synchronize()
        row["cuda_rate"] = N / median_time(gpu, repeats)
        row["cuda_floor"] = torch_fft_rate((bt, M, h, h), repeats, "cuda") * 1e9 / fl
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--only", default=",".join(GEOMETRIES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    if not fftw_backend.available():
        raise SystemExit("pyfftw is not installed")
    rows = [bench(n, args.threads, args.repeats, cuda) for n in args.only.split(",")]
    print("\n| geometry | N | torch patterns/s | FFTW patterns/s | FFTW / torch | torch FFT floor (GFLOP/s) "
          "| torch / its floor | FFTW FFT floor (GFLOP/s) | FFTW / its floor | rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']}: L={r['L']}, M={r['M']}, {r['h']}² | {r['N']} | {r['rate']['torch']:.0f} | "
              f"{r['rate']['fftw']:.0f} | {r['rate']['fftw'] / r['rate']['torch']:.2f} | "
              f"{r['floor']['torch']:.0f} ({r['gflops']['torch']:.1f}) | "
              f"{r['rate']['torch'] / r['floor']['torch']:.2f} | {r['floor']['fftw']:.0f} ({r['gflops']['fftw']:.1f}) | "
              f"{r['rate']['fftw'] / r['floor']['fftw']:.2f} | {r['err']:.1e} |")
    if cuda:
        print(f"\nCUDA ({torch.cuda.get_device_name()}), torch engine:")
        print("| geometry | patterns/s | FFT floor | fraction of floor |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['cuda_rate']:.0f} | {r['cuda_floor']:.0f} | "
                  f"{r['cuda_rate'] / r['cuda_floor']:.2f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

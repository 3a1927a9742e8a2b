"""Approximant time on the default problem, per diffraction pattern per iteration, vs the FFT floor.

The floor counts the FFTs the method cannot avoid: per pattern and gd iteration, one forward and
one backward pass (M·(2L−1) FFTs each) plus the line search's two forward passes, all of size
(h/2)², timed in the same run as one batched torch FFT. Usage: python benchmarks/approximant.py
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
from rapidtomo.recon.approximant import ApproximantSettings, approximant  # noqa: E402
from rapidtomo.simulate import SimulateSettings, default_phantom, make_scan, make_probe  # noqa: E402
from rapidtomo.physics.geometry import angle_set_deg  # noqa: E402


def fft_seconds(shape, n_ffts_per_item, items, dtype=torch.complex64, repeats=5):
    """Median seconds for ``items`` × ``n_ffts_per_item`` FFTs of ``shape``, done in batches."""
    x = torch.randn((256,) + shape, dtype=dtype)
    torch.fft.fft2(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.fft.fft2(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / 256 * n_ffts_per_item * items


def main():
    torch.set_num_threads(2)
    sim = SimulateSettings(n_nominal=1)
    phantom = default_phantom(sim)
    probe = make_probe(sim, sim.voxel_size_m)
    scan = make_scan(phantom, angle_set_deg(sim.n_reduced, sim.theta_max_deg), sim, probe,
                     np.random.default_rng(0), "scan")
    settings = ApproximantSettings()
    approximant(scan, ApproximantSettings(iterations=1))  # warm-up (plans, caches)
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        vol = approximant(scan, settings)
        runs.append(time.perf_counter() - t)
    wall = float(np.median(runs))
    n_pat = scan.intensities.shape[0] * scan.intensities.shape[1]
    M, L, h = sim.n_modes, settings.n_slabs, sim.detector_size // 2
    ffts = M * (2 * L - 1) * 4  # forward + backward + 2 line-search forwards
    # the final loss evaluation is one more forward pass per pattern
    floor = fft_seconds((h, h), M * (2 * L - 1), n_pat) * (4 * settings.iterations + 1)
    per = wall / (n_pat * settings.iterations)
    print(f"approximant, default problem: {scan.n_angles} angles x {scan.intensities.shape[1]} positions, "
          f"{h}x{h} coarse patterns, M={M}, L={L}, k={settings.iterations}, 2 threads")
    print(f"{'':28}{'seconds':>10}{'us/pattern/iter':>18}")
    print(f"{'approximant (median of 3)':28}{wall:>10.2f}{per * 1e6:>18.1f}")
    print(f"{'FFT-bound floor':28}{floor:>10.2f}{floor / (n_pat * settings.iterations) * 1e6:>18.1f}")
    print(f"ratio to floor: {wall / floor:.1f}x  ({ffts} FFTs/pattern/iteration; loss "
          f"{vol.attrs['loss_history'][0]:.3g} -> {vol.attrs['loss_history'][-1]:.3g})")


if __name__ == "__main__":
    main()

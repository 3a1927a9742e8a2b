"""Per-angle ptychography with scan-position errors: exact positions, errors, errors + refinement.

Simulates a small IC (fine reference model, sub-pixel true positions) three times with the same
phantom and angles: positions exact, and with random errors of ``--error-px`` pixels rms per axis
(the scan file keeps the nominal positions, as a stage's readings). Each scan goes through the
golden stage's per-angle ptychography (probe retrieved from the scan's guess, then every angle
with that probe; ``TwoStepSettings``), with ``refine_positions`` off, and for the scan with errors
also on (and, as a control, for the exact scan). Prints the PCC of the projected phases with the phantom's ideal projections over the
well-lit region (mean over angles), the rms position error before and after refinement (against
``/entry/simulation/true_positions_m``, the mean removed: a common shift is not observable), and
seconds. Issue #15's done-when: refined within 0.01 of the error-free PCC.
Usage: python benchmarks/positions.py [--error-px 0.5] [--angles 3] [--epochs 20] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
from rapidtomo.phantom import synthetic_ic  # noqa: E402
from rapidtomo.recon.projections import ideal_projections  # noqa: E402
from rapidtomo.recon.ptychography import illumination, reconstruct_angle  # noqa: E402
from rapidtomo.recon.two_step import (TwoStepSettings, detector_and_positions, ptychography_grid,  # noqa: E402
                                      retrieve_probe)
from rapidtomo.simulate import SimulateSettings, simulate  # noqa: E402


def pcc(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def run(scan, phantom, settings: TwoStepSettings):
    """Mean PCC of the projected phases with the ideal ones, rms position error after, seconds."""
    t0 = time.perf_counter()
    h = scan.intensities.shape[-1]
    grid = ptychography_grid(scan, settings)
    probe = retrieve_probe(scan, settings)
    ideal = ideal_projections(phantom, scan.angles_deg, grid)
    Y = scan.volume_shape[1]
    pad = (grid.height - Y) // 2
    scores, errors = [], []
    for i in range(scan.n_angles):
        tl = grid.top_left(scan.positions_m[i], (h, h))
        phase, corners = reconstruct_angle(
            scan.intensities[i], probe, tl, grid, float(np.deg2rad(scan.angles_deg[i])), scan.wavelength_m,
            epochs=settings.epochs, batch_size=settings.batch_size, lr_rad=settings.lr_rad,
            refine_attenuation=settings.refine_attenuation, seed=i, **detector_and_positions(settings, (None, None)))
        lit = illumination(tl, probe, grid.slice_shape)[pad:pad + Y]
        inside = lit > 0.1 * lit.max()
        p = phase[pad:pad + Y]
        scores.append(pcc(p[inside], ideal[i][inside]))
        true = scan.positions_m if scan.true_positions_m is None else scan.true_positions_m
        err = corners - tl - (true[i] - scan.positions_m[i]) / grid.pixel_m
        errors.append(np.sqrt(np.mean((err - err.mean(0)) ** 2)))
    return float(np.mean(scores)), float(np.mean(errors)), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--error-px", type=float, default=0.5, help="random position error, rms per axis (pixels)")
    ap.add_argument("--angles", type=int, default=3)
    ap.add_argument("--shape", type=int, nargs=3, default=(12, 32, 64))
    ap.add_argument("--epochs", type=int, default=TwoStepSettings().epochs)
    ap.add_argument("--position-step", type=float, default=TwoStepSettings().position_step)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    phantom = synthetic_ic(tuple(args.shape), (28e-9,) * 3, seed=2)
    base = dict(shape=phantom.shape, n_nominal=args.angles, n_reduced=1, theta_max_deg=140.8)
    exact = simulate(SimulateSettings(**base), phantom)[1]
    moved = simulate(SimulateSettings(**base, position_error_px=args.error_px), phantom)[1]
    h = exact.intensities.shape[-1]
    e0 = (moved.true_positions_m - moved.positions_m) / moved.voxel_size_m[2]
    print(f"IC {phantom.shape} voxels of 28 nm, {args.angles} angles, {exact.intensities.shape[1]} positions of "
          f"{h}x{h}, {SimulateSettings().photons:g} photons/pattern; position errors {args.error_px} px rms per axis "
          f"(drawn: {np.sqrt(np.mean((e0 - e0.mean(1, keepdims=True)) ** 2)):.3f} px)")
    common = dict(epochs=args.epochs, position_step=args.position_step, workers=1)
    rows = [("exact positions", exact, False), ("errors, no refinement", moved, False),
            ("errors, refined", moved, True), ("exact positions, refined", exact, True)]
    for name, scan, refine in rows:
        score, err, sec = run(scan, phantom, TwoStepSettings(refine_positions=refine, **common))
        print(f"  {name:24s} PCC {score:.4f}   position error after {err:.3f} px   {sec:.0f} s", flush=True)


if __name__ == "__main__":
    main()

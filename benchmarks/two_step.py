"""Two-step reconstruction on the default simulated IC: golden standard and FBP/SART baselines.

Simulates the default problem (``SimulateSettings()``, overridable: ``--nominal N``), then
  golden    per-angle ptychography of the nominal scan + SART (10 sweeps), the default settings
  fbp/sart  per-angle ptychography of the reduced scan (21 angles) + FBP / SART
and, as references that isolate the tomography (projection-approximation shortcut, no
ptychography), the same tomography of ideal phase projections of the phantom. Prints PCC with
the phantom over the scanned region (every voxel: the scan covers the whole slice grid at every
angle), seconds per step and pattern-iterations per second of the ptychography.
The probe (``--probe``): ``retrieved`` (default) from the scan's guess as the golden stage does,
``true`` the simulator's true probe taken as exact, ``guess`` the scan's guess taken as exact.
Usage: python benchmarks/two_step.py [--nominal 120] [--theta-nominal 180] [--threads 2] [--workers 0]
       [--n-slices 1] [--epochs 20] [--batch-size 32] [--probe retrieved|true|guess]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
from rapidtomo.physics.geometry import beam_grid  # noqa: E402
from rapidtomo.recon.projections import ideal_projections  # noqa: E402
from rapidtomo.recon.tomography import reconstruct  # noqa: E402
from rapidtomo.recon.two_step import TwoStepSettings, phase_projections, retrieve_probe  # noqa: E402
from rapidtomo.simulate import SimulateSettings, simulate  # noqa: E402


def pcc(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nominal", type=int, default=SimulateSettings().n_nominal)
    ap.add_argument("--theta-nominal", type=float, default=None, help="nominal angular range (deg)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (and default ptychography workers)")
    ap.add_argument("--workers", type=int, default=0, help="ptychography worker processes (0: --threads)")
    ap.add_argument("--n-slices", type=int, default=TwoStepSettings().n_slices)
    ap.add_argument("--epochs", type=int, default=TwoStepSettings().epochs)
    ap.add_argument("--batch-size", type=int, default=TwoStepSettings().batch_size)
    ap.add_argument("--probe", choices=["retrieved", "true", "guess"], default="retrieved")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sim = SimulateSettings(n_nominal=args.nominal, theta_max_nominal_deg=args.theta_nominal)
    t = time.perf_counter()
    phantom, nominal, reduced = simulate(sim)
    t_sim = time.perf_counter() - t
    st = TwoStepSettings(n_slices=args.n_slices, epochs=args.epochs, batch_size=args.batch_size,
                         workers=args.workers)
    h, w = nominal.intensities.shape[-2:]
    print(f"default IC {phantom.shape} voxels of {phantom.voxel_size_m[0] * 1e9:.0f} nm; nominal "
          f"{nominal.n_angles} angles over {np.ptp(nominal.angles_deg):.1f} deg, reduced {reduced.n_angles}, "
          f"{nominal.intensities.shape[1]} positions of {h}x{w}, {len(nominal.probe)} probe modes, {sim.photons:g} photons/pattern; simulate {t_sim:.0f} s")
    print(f"ptychography: L={st.n_slices}, {st.epochs} epochs, batch {st.batch_size}, "
          f"{st.workers or args.threads} worker process(es) of 1 thread, probe: {args.probe}")
    rows = []
    for name, scan in (("nominal", nominal), ("reduced", reduced)):
        t = time.perf_counter()
        probe = {"retrieved": lambda: retrieve_probe(scan, st), "true": lambda: scan.true_probe,
                 "guess": lambda: scan.probe}[args.probe]()
        P = phase_projections(scan, st, probe=probe)
        top = (P.shape[1] - scan.volume_shape[1]) // 2
        P = P[:, top:top + scan.volume_shape[1]]  # the volume's rows of the slice grid
        t_p = time.perf_counter() - t
        n_pat = scan.intensities.shape[0] * scan.intensities.shape[1]
        print(f"  {name}: {t_p:.1f} s for {scan.n_angles} angles, "
              f"{n_pat * st.epochs / t_p:.0f} pattern-iterations/s")
        grid = beam_grid(scan.volume_shape, scan.voxel_size_m, (h, w), 1).covering(scan.positions_m, (h, w))
        ideal = ideal_projections(phantom, scan.angles_deg, grid)
        methods = ("sart",) if name == "nominal" else ("fbp", "sart")
        for m in methods:
            label = "golden (SART)" if name == "nominal" else f"baseline {m.upper()}"
            t = time.perf_counter()
            vol = reconstruct(P, scan.angles_deg, scan.volume_shape, scan.voxel_size_m, method=m,
                              show_progress=False)
            t_t = time.perf_counter() - t
            ref = reconstruct(ideal, scan.angles_deg, scan.volume_shape, scan.voxel_size_m, method=m,
                              show_progress=False)
            rows.append((label, scan.n_angles, pcc(vol, phantom.data), pcc(ref, phantom.data), t_p, t_t))
    print(f"\n{'reconstruction':16}{'angles':>7}{'PCC':>8}{'PCC ideal proj.':>17}{'ptycho s':>10}{'tomo s':>8}")
    for label, n, r, r_ideal, t_p, t_t in rows:
        print(f"{label:16}{n:>7}{r:>8.3f}{r_ideal:>17.3f}{t_p:>10.1f}{t_t:>8.1f}")


if __name__ == "__main__":
    main()

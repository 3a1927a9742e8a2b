"""Drifting projections: does alignment bring the golden standard back to the drift-free one?

Simulates a small synthetic IC twice with the same seed and the same scanned field (the sample's
shadow plus the drift and axis room on every side, ``field_margin_px``): once still, once
with a random drift of up to ``--drift`` pixels per angle (y and x') and the rotation axis
``--axis`` pixels off the scan's centre (``SimulateSettings.drift_px``, ``axis_offset_px``).
Then the golden standard (per-angle ptychography of the nominal scan + SART, the default
settings but ``--epochs``) of
  still            the drift-free scan, not aligned
  still, aligned   the drift-free scan, aligned (what alignment costs when nothing moved)
  drift, aligned   the drifting scan, aligned (vertical mass profiles, reprojection, rotation centre)
  drift, raw       the drifting scan, not aligned
and, with ``--reduced``, the FBP baseline of the reduced drifting scan, aligned (the shifts the
approximant takes). Prints PCC with the phantom, the shifts' rms error against the simulated
ones (up to a translation of the sample, in pixels) and the rotation centre found. The per-angle
projections of a scan are computed once (a cache shared by its aligned and raw runs).
Usage: python benchmarks/alignment.py [--shape 12 16 64] [--nominal 40] [--drift 5] [--axis 3]
       [--photons 1e6] [--epochs 20] [--threads 2] [--field-margin PX] [--reduced]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
from rapidtomo.phantom import synthetic_ic  # noqa: E402
from rapidtomo.recon.two_step import TwoStepSettings, alignment_summary, two_step  # noqa: E402
from rapidtomo.simulate import SimulateSettings, simulate  # noqa: E402


def pcc(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(12, 16, 64), metavar=("Z", "Y", "X"))
    ap.add_argument("--nominal", type=int, default=40, help="nominal angles")
    ap.add_argument("--theta-max", type=float, default=SimulateSettings().theta_max_deg, help="angular range (deg)")
    ap.add_argument("--drift", type=float, default=5.0, help="largest drift per axis (pixels)")
    ap.add_argument("--axis", type=float, default=3.0, help="rotation-axis offset (pixels)")
    ap.add_argument("--photons", type=float, default=SimulateSettings().photons)
    ap.add_argument("--epochs", type=int, default=TwoStepSettings().epochs)
    ap.add_argument("--threads", type=int, default=2, help="ptychography worker processes")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--field-margin", type=int, default=None, help="scanned field beyond the sample (pixels; "
                    "default: the drift plus the axis offset, for both scans; 0: the still scan gets none)")
    ap.add_argument("--reduced", action="store_true", help="also align the reduced drifting scan (FBP baseline)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    phantom = synthetic_ic(tuple(args.shape), (28e-9,) * 3, seed=args.seed)
    # the same scanned field for both: room for the drift and the axis offset, air around the sample
    margin = args.field_margin if args.field_margin is not None else int(2 * np.ceil((args.drift + abs(args.axis)) / 2))
    common = dict(shape=tuple(args.shape), n_nominal=args.nominal, theta_max_deg=args.theta_max,
                  photons=args.photons, seed=args.seed, field_margin_px=margin)
    t = time.perf_counter()
    _, still, _ = simulate(SimulateSettings(**common), phantom)
    _, drift, drift_reduced = simulate(SimulateSettings(**common, drift_px=args.drift, axis_offset_px=args.axis),
                                       phantom)
    print(f"IC {phantom.shape}, {args.nominal} angles over {args.theta_max:g} deg, {args.photons:g} photons, drift "
          f"up to {args.drift:g} px, axis offset {args.axis:g} px; simulate {time.perf_counter() - t:.0f} s")
    st = TwoStepSettings(epochs=args.epochs, workers=args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("still", still, False, "still"), ("still, aligned", still, True, "still"),
                ("drift, aligned", drift, True, "drift"), ("drift, raw", drift, False, "drift")]
        if args.reduced:
            runs.append(("reduced FBP, aligned", drift_reduced, True, "reduced"))
        for label, scan, align, cache in runs:
            s = st.model_copy(update={"align": align, "method": "fbp" if "FBP" in label else "sart"})
            t = time.perf_counter()
            vol = two_step(scan, s, cache_path=Path(tmp) / f"{cache}.h5")
            seconds = time.perf_counter() - t
            rec = vol.attrs.get("alignment")
            if rec:
                print(f"  {label}: {alignment_summary(rec)}")
            err = rec["error_rms_m"]["rms"] / rec["pixel_m"] if rec and "error_rms_m" in rec else float("nan")
            axis = rec["axis_offset_m"] / rec["pixel_m"] if rec else float("nan")
            rows.append((label, scan.n_angles, pcc(vol.data, phantom.data), err, axis, seconds))
    print(f"\n{'golden standard':22}{'angles':>7}{'PCC':>8}{'shift rms px':>14}{'axis px':>9}{'s':>7}")
    for label, n, r, err, axis, seconds in rows:
        print(f"{label:22}{n:>7}{r:>8.4f}{err:>14.3f}{axis:>9.2f}{seconds:>7.0f}")


if __name__ == "__main__":
    main()

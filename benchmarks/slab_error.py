"""Forward-model error vs the number of slabs L, against a fine-sliced reference, per angle and thickness.

For a synthetic IC plate (28 nm voxels, 8.8 keV, zone-plate probe of 32² pixels, one mode), each
angle θ and each L, the operator H_θ (slabs following the sample: L slabs over the support's
extent along the beam) gives intensities at a row of probe positions across the sample; the
reference is the same operator with one slab per beam sample (the finest slicing the beam grid
has). Printed: the relative L2 difference ‖I_L − I_ref‖ / ‖I_ref‖ over the positions, with the
extent along the beam, the longest ray path in the plate, min(T/cosθ, W/sinθ), and that path over
the depth of field DOF = 2·dx²/λ. The last column is the slicing before slabs followed the sample
(L slabs over the volume's diagonal at every angle), for ``--before`` slabs.

Usage: python benchmarks/slab_error.py [--thickness 32,128] [--angles 0,30,60,70.4] [--slabs 1,2,5,10,20]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time

import numpy as np
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
from rapidtomo.phantom import synthetic_ic  # noqa: E402
from rapidtomo.physics.geometry import BeamGrid, beam_grid, wavelength_m  # noqa: E402
from rapidtomo.physics.operator import PtychoTomoOperator  # noqa: E402
from rapidtomo.physics.probe import zone_plate_probe  # noqa: E402

ENERGY_KEV, DX, WINDOW, Y = 8.8, 28e-9, 32, 16


class DiagonalGrid(BeamGrid):
    """The slicing before slabs followed the sample: L slabs over the box's diagonal at every angle."""

    def extent_m(self, theta_rad: float) -> float:
        Z, _, X = self.volume_shape
        return math.hypot(Z * self.voxel_size_m[0], X * self.voxel_size_m[2])


def positions(grid, theta, Z, X, step=8):
    """Top-left corners of a row of windows at mid-height whose centres lie over the projected plate."""
    half = (Z * DX * abs(math.sin(theta)) + X * DX * abs(math.cos(theta))) / 2 / DX
    cols = np.arange(0, grid.width - WINDOW + 1, step)
    centre = cols + (WINDOW - grid.width) / 2
    cols = cols[np.abs(centre) <= half]
    return np.stack([np.full(len(cols), (grid.height - WINDOW) // 2), cols], -1)


def reference_slabs(grid, theta):
    """The L for which every slab holds one beam sample at θ (the grid's own sampling step)."""
    return round(grid.extent_m(theta) / grid.beam_sampling(theta).step_m)


def row(volume, theta_deg, slabs, before, lam):
    Z, _, X = volume.shape
    theta = math.radians(theta_deg)
    probe = zone_plate_probe(WINDOW, DX, ENERGY_KEV)[None]
    phase = torch.as_tensor(volume.data, dtype=torch.float64)
    mu = torch.as_tensor(volume.attenuation, dtype=torch.float64) if volume.attenuation is not None else None

    def intensities(L, diagonal=False):
        grid = beam_grid(volume.shape, volume.voxel_size_m, (WINDOW, WINDOW), L)
        if diagonal:
            grid = DiagonalGrid(**{f.name: getattr(grid, f.name) for f in dataclasses.fields(grid)})
        op = PtychoTomoOperator(grid, probe, lam, dtype=torch.float64).at(theta)
        pos = torch.as_tensor(positions(grid, theta, Z, X))
        return grid, op.intensities(phase, pos, mu).numpy()

    grid, _ = intensities(1)
    L_ref = reference_slabs(grid, theta)
    _, ref = intensities(L_ref)
    def error(I):
        return float(np.linalg.norm(I - ref) / np.linalg.norm(ref))

    errors = {L: error(intensities(L)[1]) for L in slabs}
    errors["before"] = error(intensities(before, diagonal=True)[1])
    T, W = Z * DX, X * DX
    path = min(T / max(abs(math.cos(theta)), 1e-12), W / max(abs(math.sin(theta)), 1e-12))
    return dict(theta=theta_deg, extent=grid.extent_m(theta), path=path, L_ref=L_ref, errors=errors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thickness", default="32,128", help="plate thicknesses Z (voxels)")
    ap.add_argument("--angles", default="0,30,60,70.4", help="angles (degrees)")
    ap.add_argument("--slabs", default="1,2,5,10,20", help="slab counts L")
    ap.add_argument("--before", type=int, default=5, help="slab count of the diagonal slicing (before)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    lam = wavelength_m(ENERGY_KEV)
    dof = 2 * DX**2 / lam
    slabs = [int(v) for v in args.slabs.split(",")]
    print(f"λ = {lam:.4g} m, dx = {DX:g} m, DOF = 2·dx²/λ = {dof * 1e6:.2f} µm, window {WINDOW}², "
          f"load average {os.getloadavg()[0]:.2f}")
    print("\n| plate Z×X (voxels) | θ (°) | extent along beam (µm) | longest path (µm) | path / DOF | "
          "reference slabs | " + " | ".join(f"L={L}" for L in slabs) + f" | L={args.before} over the diagonal (before) |")
    print("|---|---|---|---|---|---|" + "---|" * (len(slabs) + 1))
    t0 = time.perf_counter()
    for Z in (int(v) for v in args.thickness.split(",")):
        volume = synthetic_ic((Z, Y, 256), (DX,) * 3, energy_kev=ENERGY_KEV, seed=0)
        for a in (float(v) for v in args.angles.split(",")):
            r = row(volume, a, slabs, args.before, lam)
            print(f"| {Z}×256 | {r['theta']:g} | {r['extent'] * 1e6:.2f} | {r['path'] * 1e6:.2f} | "
                  f"{r['path'] / dof:.3f} | {r['L_ref']} | " + " | ".join(f"{r['errors'][L]:.1e}" for L in slabs)
                  + f" | {r['errors']['before']:.1e} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

"""Refractive-index decrements δ and absorption indices β of IC materials, from xraylib."""
from __future__ import annotations

import math

import xraylib

from ..physics.geometry import wavelength_m

# name → (xraylib compound, density g/cm³); label ids used by the label volumes
MATERIALS = {"air": (None, 0.0), "SiO2": ("SiO2", 2.2), "Si": ("Si", 2.33), "Cu": ("Cu", 8.96), "W": ("W", 19.3)}
LABELS = {"air": 0, "SiO2": 1, "Si": 2, "Cu": 3, "W": 4}


def material_constants(energy_kev: float) -> dict[str, tuple[float, float]]:
    """``{name: (δ, β)}`` at ``energy_kev`` (n = 1 − δ + iβ); air is (0, 0)."""
    out = {}
    for name, (compound, density) in MATERIALS.items():
        if compound is None:
            out[name] = (0.0, 0.0)
        else:
            out[name] = (1.0 - xraylib.Refractive_Index_Re(compound, energy_kev, density),
                         xraylib.Refractive_Index_Im(compound, energy_kev, density))
    return out


def phase_and_attenuation_per_voxel(energy_kev: float, dz_m: float) -> dict[str, tuple[float, float]]:
    """``{name: (φ, μ)}`` per voxel of length ``dz_m`` along the beam: 2π·(δ, β)·dz/λ."""
    k = 2 * math.pi * dz_m / wavelength_m(energy_kev)
    return {n: (k * d, k * b) for n, (d, b) in material_constants(energy_kev).items()}

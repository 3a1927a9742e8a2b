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
    return {name: delta_beta(compound, density, energy_kev) for name, (compound, density) in MATERIALS.items()}


def phase_and_attenuation_per_voxel(energy_kev: float, dz_m: float) -> dict[str, tuple[float, float]]:
    """``{name: (φ, μ)}`` per voxel of length ``dz_m`` along the beam: 2π·(δ, β)·dz/λ."""
    k = 2 * math.pi * dz_m / wavelength_m(energy_kev)
    return {n: (k * d, k * b) for n, (d, b) in material_constants(energy_kev).items()}


# Materials of real process stacks (rapidtomo.phantom.layout): name → (xraylib compound, density g/cm³).
# Densities: bulk values for metals and crystalline Si; deposited films as typical of CMOS back ends
# (docs/phantoms.md, "Materials of the process stacks"). A stack file may add its own.
STACK_MATERIALS = {
    **MATERIALS,
    "polySi": ("Si", 2.33),
    "Al": ("Al", 2.70),
    "TiN": ("TiN", 5.22),
    "Ta": ("Ta", 16.69),
    "TaN": ("TaN", 14.3),
    "Si3N4": ("Si3N4", 3.0),
    "SiCN": ("SiCN", 2.0),
    "low-k": ("SiC1O1.5H3", 1.4),
    "polyimide": ("C22H10N2O5", 1.42),
}


def delta_beta(compound: str | None, density_g_cm3: float, energy_kev: float) -> tuple[float, float]:
    """(δ, β) of an xraylib compound formula at ``density_g_cm3`` and ``energy_kev``; ``None`` is vacuum."""
    if compound is None:
        return 0.0, 0.0
    return (1.0 - xraylib.Refractive_Index_Re(compound, energy_kev, density_g_cm3),
            xraylib.Refractive_Index_Im(compound, energy_kev, density_g_cm3))

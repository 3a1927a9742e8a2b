"""Phantoms: synthetic integrated circuits and simple analytic test objects (docs/phantoms.md)."""
from .ic import ICSettings, metal_fraction, synthetic_ic, synthetic_ic_labels
from .materials import LABELS, material_constants, phase_and_attenuation_per_voxel
from .simple import analytic_phantom

__all__ = ["ICSettings", "synthetic_ic", "synthetic_ic_labels", "metal_fraction", "analytic_phantom",
           "material_constants", "phase_and_attenuation_per_voxel", "LABELS"]

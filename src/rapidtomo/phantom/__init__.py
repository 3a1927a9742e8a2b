"""Phantoms: synthetic integrated circuits and simple analytic test objects."""
from .ic import ICSettings, synthetic_ic, synthetic_ic_labels
from .materials import LABELS, material_constants
from .simple import analytic_phantom

__all__ = ["ICSettings", "synthetic_ic", "synthetic_ic_labels", "analytic_phantom", "material_constants", "LABELS"]

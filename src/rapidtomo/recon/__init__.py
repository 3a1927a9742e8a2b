"""Reconstruction: the approximant, per-angle ptychography, tomography (FBP/SART), two-step."""
from .approximant import ApproximantSettings, approximant
from .tomography import fbp, sart
from .two_step import TwoStepSettings, two_step

__all__ = ["approximant", "ApproximantSettings", "fbp", "sart", "two_step", "TwoStepSettings"]

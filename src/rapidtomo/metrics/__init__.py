"""Metrics: PCC and MS-SSIM (similarity), BER and DICE (segmentation), PSD planes (spectra)."""
from .segmentation import TwoGaussians, ber_dice, fit_two_gaussians, segmentation_scores
from .similarity import ms_ssim, ms_ssim_plan, pcc
from .spectra import psd_planes

__all__ = ["pcc", "ms_ssim", "ms_ssim_plan", "segmentation_scores", "fit_two_gaussians", "TwoGaussians",
           "ber_dice", "psd_planes"]

"""Power spectral density planes of a volume (the paper's Fig. S4)."""
from __future__ import annotations

import numpy as np


def psd_planes(volume) -> dict[str, np.ndarray]:
    """Central planes of the 3D PSD |FFT|² (DC at the centre) of a ``(z, y, x)`` volume.

    Returns ``{"kx_ky": (Y, X), "ky_kz": (Z, Y) as (kz, ky), "kx_kz": (Z, X) as (kz, kx)}``; the mean is
    removed first so DC does not dominate.
    """
    v = np.asarray(volume, dtype=np.float64)
    P = np.abs(np.fft.fftshift(np.fft.fftn(v - v.mean()))) ** 2
    Z, Y, X = v.shape
    return {"kx_ky": P[Z // 2], "ky_kz": P[:, :, X // 2], "kx_kz": P[:, Y // 2, :]}


def frequencies(n: int, spacing_m: float) -> np.ndarray:
    """Spatial frequencies (cycles/m) along an axis of ``n`` samples, DC-centred like the planes."""
    return np.fft.fftshift(np.fft.fftfreq(n, d=spacing_m))

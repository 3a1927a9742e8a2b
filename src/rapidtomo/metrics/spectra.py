"""Power spectral density planes of a volume (the paper's Fig. 3h and Fig. S4)."""
from __future__ import annotations

import numpy as np
from scipy import fft

# plane name → (the two axes of the plane as (rows, cols), the axis summed over)
PLANES = {"kx_kz": ((0, 2), 1), "ky_kz": ((0, 1), 2), "kx_ky": ((1, 2), 0)}


def psd_planes(volume, chunk_voxels: int = 1 << 24) -> dict[str, np.ndarray]:
    """The three PSD planes of a ``(z, y, x)`` volume, DC at the centre (index n // 2).

    ``"kx_kz"``: (Z, X) as rows kz, columns kx; ``"ky_kz"``: (Z, Y); ``"kx_ky"``: (Y, X). Each is
    the 3D PSD |FFT|² summed over the third frequency axis, which by Parseval is n3 times the sum
    of the 2D PSDs of all the volume's planes of that orientation (computed that way, in chunks
    of about ``chunk_voxels``, so no 3D transform is held in memory). The volume's mean is
    removed first so that DC does not dominate. Units: (value unit)² per frequency bin.
    """
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim != 3:
        raise ValueError(f"psd_planes needs a (z, y, x) volume, got shape {v.shape}")
    mean = v.mean()
    out = {}
    for name, ((r, c), other) in PLANES.items():
        n_other = v.shape[other]
        step = max(1, chunk_voxels // max(1, v.shape[r] * v.shape[c]))
        acc = np.zeros((v.shape[r], v.shape[c]))
        for start in range(0, n_other, step):
            block = np.take(v, np.arange(start, min(start + step, n_other)), axis=other) - mean
            spec = fft.fft2(np.moveaxis(block, other, 0), axes=(1, 2))  # planes stacked first
            acc += (np.abs(spec) ** 2).sum(0)
        out[name] = np.fft.fftshift(acc * n_other)
    return out


def frequencies(n: int, spacing_m: float) -> np.ndarray:
    """Spatial frequencies (cycles/m) of an axis of ``n`` samples, DC-centred like the planes."""
    return np.fft.fftshift(np.fft.fftfreq(n, d=spacing_m))

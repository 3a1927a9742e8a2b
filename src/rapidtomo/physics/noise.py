"""Photon (Poisson) noise on diffraction patterns."""
from __future__ import annotations

import numpy as np


def poisson_noise(intensities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson draws with the given means (photons), float32, same shape."""
    return rng.poisson(np.maximum(intensities, 0)).astype(np.float32)

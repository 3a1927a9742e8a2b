"""The ptycho-tomographic forward operator H_θ: rotate → slice into L slabs → multislice → |·|².

``H_θ(φ) = Σ_m |F t_{θ,L} P_Δz … P_Δz t_{θ,1} u_m|²`` with ``t_{θ,l} = exp(i·φ_{θ,l} − μ_{θ,l})`` the
slab transmissions of the rotated volume (paper Eq. 2). Torch throughout, differentiable in φ.
"""
from __future__ import annotations

import numpy as np
import torch

from .geometry import BeamGrid
from .multislice import forward_intensity
from .rotation import interpolation_weights, slab_phases


def slab_transmissions(phase: torch.Tensor, theta_rad: float, grid: BeamGrid,
                       attenuation: torch.Tensor | None = None, weights=None) -> torch.Tensor:
    """Complex slab transmissions ``(L, height, width)`` of a phase (and attenuation) volume."""
    phi = slab_phases(phase, theta_rad, grid, weights)
    if attenuation is None:
        return torch.polar(torch.ones_like(phi), phi)
    mu = slab_phases(attenuation, theta_rad, grid, weights)
    return torch.polar(torch.exp(-mu), phi)


def angle_intensities(phase: torch.Tensor, theta_rad: float, grid: BeamGrid, probe: torch.Tensor,
                      top_left: torch.Tensor, wavelength_m: float, attenuation: torch.Tensor | None = None,
                      weights=None, batch_size: int | None = None) -> torch.Tensor:
    """Intensities ``(N, h, w)`` of one angle θ: H_θ applied to the phase volume ``(Z, Y, X)``."""
    t = slab_transmissions(phase, theta_rad, grid, attenuation, weights)
    return forward_intensity(t, probe, top_left, wavelength_m=wavelength_m, pixel_size_m=grid.pixel_m,
                             slice_spacing_m=grid.slab_thickness_m, batch_size=batch_size)


def scan_intensities(phase, angles_rad, grid: BeamGrid, probe, top_left, wavelength_m: float,
                     attenuation=None, device="cpu", dtype=torch.float32, progress=None) -> np.ndarray:
    """Noiseless intensities ``(n_angles, N, h, w)`` float32 for every angle (numpy out).

    ``top_left`` is ``(N, 2)`` (same scan at every angle) or ``(n_angles, N, 2)``.
    ``progress`` optionally wraps the angle iterator (a progress bar).
    """
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    ph = torch.as_tensor(np.asarray(phase), dtype=dtype, device=device)
    mu = None if attenuation is None else torch.as_tensor(np.asarray(attenuation), dtype=dtype, device=device)
    pr = torch.as_tensor(np.asarray(probe), device=device).to(cdtype)
    tl = np.asarray(top_left)
    out = None
    idx = range(len(angles_rad))
    with torch.no_grad():
        for i in (progress(idx) if progress else idx):
            pos = torch.as_tensor(tl[i] if tl.ndim == 3 else tl, device=device)
            w = interpolation_weights(grid, float(angles_rad[i]), device, dtype)
            I = angle_intensities(ph, float(angles_rad[i]), grid, pr, pos, wavelength_m, mu, w).cpu().numpy()
            if out is None:
                out = np.empty((len(angles_rad),) + I.shape, dtype=np.float32)
            out[i] = I
    return out

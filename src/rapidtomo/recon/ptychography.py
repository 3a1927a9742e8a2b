"""Per-angle ptychography on the multislice model: the projected phase of one rotation angle.

Unknowns: L slices of phase φ_l (and optionally attenuation μ_l) on the angle's slice grid,
t_l = exp(i·φ_l − μ_l); the probe is known (``scan.probe``). Loss: amplitude least squares
Σ (sqrt(Σ_m |u_m|²) − sqrt(g))², the Gaussian approximation of the Poisson likelihood that is
insensitive to the photon count (LSQML-like). Solver: Adam on mini-batches of positions (a
stochastic gradient method in the spirit of ePIE: each batch updates the object right away),
with a learning rate in radians, cosine-decayed over the epochs; no per-data-set tuning. Working
on φ directly avoids phase wrapping. φ is the sum of a pixel grid and bilinearly upsampled
coarser grids (4x, 16x): large flat regions (a plate of SiO2), which single-pixel updates fill in
only slowly from their edges, converge in a few epochs. Output: the projected phase Σ_l φ_l.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..physics.geometry import BeamGrid
from ..physics.multislice import exit_waves, far_field_intensity


def illumination(top_left: np.ndarray, probe: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Σ over positions of the probe intensity on the slice grid ``(H, W)`` (how well each pixel is lit)."""
    h, w = probe.shape[-2:]
    p = (np.abs(probe) ** 2).sum(0)
    out = np.zeros(shape)
    for r, c in top_left:
        out[r:r + h, c:c + w] += p
    return out


def reconstruct_angle(intensities: np.ndarray, probe: np.ndarray, top_left: np.ndarray, grid: BeamGrid,
                      wavelength_m: float, *, n_slices: int = 1, epochs: int = 20, batch_size: int = 32,
                      lr_rad: float = 0.05, refine_attenuation: bool = True, seed: int = 0,
                      scales: tuple[int, ...] = (1, 4, 16), device="cpu") -> np.ndarray:
    """Projected phase ``(height, width)`` (radians) from one angle's patterns ``(N, h, w)``.

    ``n_slices`` slices spaced by the total beam-grid depth / n_slices (1 = projection
    approximation). Positions are visited in a seeded random order each epoch.
    """
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    amp = torch.as_tensor(np.sqrt(np.maximum(intensities, 0)), dtype=torch.float32, device=dev)
    pr = torch.as_tensor(probe, device=dev).to(torch.complex64)
    pos = torch.as_tensor(top_left, device=dev).long()
    H, W = grid.slice_shape
    pyramid = [torch.zeros((n_slices, -(-H // f), -(-W // f)), device=dev, requires_grad=True) for f in scales]
    mu = torch.zeros((n_slices, H, W), device=dev, requires_grad=refine_attenuation)
    params = pyramid + ([mu] if refine_attenuation else [])
    opt = torch.optim.Adam(params, lr=lr_rad)
    n = len(pos)
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr_rad * 0.05)
    dz = grid.n_beam * grid.beam_step_m / n_slices
    kw = dict(wavelength_m=wavelength_m, pixel_size_m=grid.pixel_m, slice_spacing_m=dz)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g).to(dev)
        for i in range(0, n, batch_size):
            b = order[i:i + batch_size]
            phi = _compose(pyramid, scales, (H, W))
            t = torch.polar(torch.exp(-mu), phi)
            model = far_field_intensity(exit_waves(t, pr, pos[b], **kw))
            loss = ((torch.sqrt(model + 1e-6) - amp[b]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return _compose(pyramid, scales, (H, W)).detach().sum(0).cpu().numpy()


def _compose(pyramid: list[torch.Tensor], scales: tuple[int, ...], shape: tuple[int, int]) -> torch.Tensor:
    """φ = Σ_s upsample_s(φ_s): fine pixels plus bilinearly upsampled coarse levels ``(L, H, W)``."""
    out = pyramid[0]
    for p, f in zip(pyramid[1:], scales[1:]):
        up = torch.nn.functional.interpolate(p[None], scale_factor=f, mode="bilinear", align_corners=False)[0]
        out = out + up[:, :shape[0], :shape[1]]
    return out

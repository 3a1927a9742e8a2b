"""Per-angle ptychography on the multislice model: projected phases, and the probe retrieved with them.

Unknowns per angle: L slices of phase φ_l (and optionally attenuation μ_l) on the angle's slice
grid, t_l = exp(−i·φ_l − μ_l) (the operator's sign, :func:`rapidtomo.physics.operator.transmission`);
optionally the probe modes, shared by every angle solved together (blind ptychography, as LSQ-ML
in PtychoShelves: the scan file's probe is only an initial guess). Forward model: the operator's
multislice core (:class:`rapidtomo.physics.multislice.Multislice`) at the angle's slab spacing, the
probe given at the plane through the rotation axis (b = 0) and propagated to the angle's first slab
(``BeamGrid.first_slab_m``), as in the operator.
Loss: amplitude least squares Σ (sqrt(Σ_m |u_m|²) − sqrt(g))², the Gaussian approximation of the
Poisson likelihood that is insensitive to the photon count (LSQML-like). Solver: Adam on
mini-batches of positions (a stochastic gradient method in the spirit of ePIE: each batch updates
the object right away), with a learning rate in radians, cosine-decayed over the epochs; no
per-data-set tuning. Working on φ directly avoids phase wrapping. φ is the sum of a pixel grid and
bilinearly upsampled coarser grids (4x, 16x): large flat regions (a plate of SiO2), which
single-pixel updates fill in only slowly from their edges, converge in a few epochs.

Probe refinement: the initial probe is scaled to the measured power (``h·w·Σ_m Σ|P_m|²`` = mean
photons per pattern). The probe is ``P = P_Δ(Q)``: pixel modes Q propagated (angular spectrum) by a
defocus correction Δ; angle k sees ``P_{Δ+d_k}(Q)``, one kernel for the defocus and the distance
d_k from b = 0 to its first slab. A wrong defocus, the usual error of a zone-plate model, is one parameter for
Δ but a slow, ill-conditioned change for pixel-wise updates (the far field, which the data fix
directly, does not change with it). From epoch ``probe_start_epoch`` Δ takes Adam steps of
``defocus_lr`` × the depth of field 2·dx²/λ and Q steps of ``probe_lr`` × the initial probe's peak
amplitude, both cosine-decayed like the object's; after every epoch Q is orthogonalised
(eigenvectors of the modes' Gram matrix, ordered by power, as PtychoShelves does; propagation
keeps orthogonality) and rescaled to the measured power.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..physics.geometry import BeamGrid
from ..physics.multislice import Multislice, axial_wavenumber, far_field_intensity
from ..physics.operator import transmission


def illumination(top_left: np.ndarray, probe: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Σ over positions of the probe intensity on the slice grid ``(H, W)`` (how well each pixel is lit)."""
    h, w = probe.shape[-2:]
    p = (np.abs(probe) ** 2).sum(0)
    out = np.zeros(shape)
    for r, c in top_left:
        out[r:r + h, c:c + w] += p
    return out


def measured_power(intensities: np.ndarray) -> float:
    """The probe power ``Σ_m Σ|P_m|²`` that the patterns ``(..., h, w)`` imply (unnormalised FFT, no absorption)."""
    h, w = intensities.shape[-2:]
    return float(np.mean(np.sum(intensities, axis=(-2, -1)))) / (h * w)


def orthogonalize_modes(probe: torch.Tensor) -> torch.Tensor:
    """Modes ``(M, h, w)`` made orthogonal, spanning the same space with the same Σ|P|², strongest first."""
    flat = probe.reshape(probe.shape[0], -1)
    power, vec = torch.linalg.eigh(flat.conj() @ flat.T)  # Gram matrix G_ab = <P_a, P_b>
    return (vec[:, torch.argsort(power, descending=True)].T @ flat).reshape(probe.shape)


def relative_wavenumber(shape: tuple[int, int], wavelength_m: float, pixel_m: float, device="cpu") -> torch.Tensor:
    """``k_z − 2π/λ`` (rad/m) ``(h, w)`` float64: the angular-spectrum phase per metre without the
    global phase (which changes no intensity and would cost precision); 0 where evanescent (those
    components pass unchanged)."""
    kz, propagating = axial_wavenumber(shape, wavelength_m, pixel_m)
    return torch.as_tensor(np.where(propagating, kz - 2 * math.pi / wavelength_m, 0.0), device=device)


def propagate_probe(probe: torch.Tensor, kz: torch.Tensor, z) -> torch.Tensor:
    """Probe modes ``(M, h, w)`` propagated by ``z`` metres (float or a float64 tensor, differentiable):
    one kernel ``exp(i·kz·z)`` of :func:`relative_wavenumber`'s ``kz``."""
    return torch.fft.ifft2(torch.fft.fft2(probe) * torch.polar(torch.ones_like(kz), kz * z).to(probe.dtype))


def reconstruct_angles(intensities: np.ndarray, probe: np.ndarray, top_left: np.ndarray, grid: BeamGrid,
                       thetas_rad, wavelength_m: float, *, epochs: int = 20, batch_size: int = 32,
                       lr_rad: float = 0.05, refine_attenuation: bool = True, refine_probe: bool = False,
                       probe_lr: float = 0.01, defocus_lr: float = 0.5, probe_start_epoch: int = 2, seed: int = 0,
                       scales: tuple[int, ...] = (1, 4, 16), device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Projected phases ``(K, height, width)`` (radians) and the probe ``(M, h, w)`` at b = 0 of K angles.

    ``intensities (K, N, h, w)``, ``top_left (K, N, 2)`` on the slice grid of ``grid`` (whose
    ``n_slabs`` slices split the sample's extent at each θ of ``thetas_rad``; 1 = projection
    approximation), ``probe (M, h, w)`` the initial (or known) probe at b = 0. Every epoch visits each
    angle's positions in a seeded random order, the angles interleaved batch by batch, so a shared
    probe sees them all. Without ``refine_probe`` the probe is returned unchanged.
    """
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    K, n = intensities.shape[:2]
    amp = torch.as_tensor(np.sqrt(np.maximum(intensities, 0)), dtype=torch.float32, device=dev)
    pos = torch.as_tensor(np.asarray(top_left), device=dev).long()
    pr = torch.as_tensor(np.asarray(probe), device=dev).to(torch.complex64)
    H, W = grid.slice_shape
    L = grid.n_slabs
    defocus = torch.zeros((), dtype=torch.float64, device=dev, requires_grad=refine_probe)
    if refine_probe:
        power = measured_power(intensities)
        pr = orthogonalize_modes(pr) * math.sqrt(power / float((pr.abs() ** 2).sum()))
        pr.requires_grad_(True)
    kz = relative_wavenumber(tuple(pr.shape[-2:]), wavelength_m, grid.pixel_m, dev)
    first = [grid.first_slab_m(float(th)) for th in thetas_rad]

    def probe_at(z) -> torch.Tensor:
        """The probe P_{Δ+z}(Q) at distance z (m) downstream of b = 0 (differentiable in Q and Δ)."""
        return propagate_probe(pr, kz, defocus + z)
    pyramids = [[torch.zeros((L, -(-H // f), -(-W // f)), device=dev, requires_grad=True) for f in scales]
                for _ in range(K)]
    mus = [torch.zeros((L, H, W), device=dev, requires_grad=refine_attenuation) for _ in range(K)]
    params = [p for pyr in pyramids for p in pyr] + (mus if refine_attenuation else [])
    steps_per_epoch = K * math.ceil(n / batch_size)
    opt = torch.optim.Adam(params, lr=lr_rad)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch, eta_min=lr_rad * 0.05)
    probe_opt = probe_sched = None
    if refine_probe:
        probe_steps = max(1, (epochs - probe_start_epoch) * steps_per_epoch)
        step = probe_lr * float(pr.detach().abs().max())
        dof = 2 * grid.pixel_m**2 / wavelength_m
        probe_opt = torch.optim.Adam([{"params": [pr], "lr": step}, {"params": [defocus], "lr": defocus_lr * dof}])
        probe_sched = torch.optim.lr_scheduler.CosineAnnealingLR(probe_opt, probe_steps, eta_min=0)
    spacing = [grid.slab_thickness_m(float(th)) for th in thetas_rad]
    fixed = None if refine_probe else [probe_at(z) for z in first]  # a known probe: propagated once
    for epoch in range(epochs):
        orders = [torch.randperm(n, generator=g).to(dev) for _ in range(K)]
        probe_on = refine_probe and epoch >= probe_start_epoch
        for i in range(0, n, batch_size):
            for k in range(K):
                b = orders[k][i:i + batch_size]
                t = transmission(_compose(pyramids[k], scales, (H, W)), mus[k])
                core = Multislice(probe_at(first[k]) if fixed is None else fixed[k], wavelength_m=wavelength_m, pixel_size_m=grid.pixel_m,
                                  slice_spacing_m=spacing[k])
                model = far_field_intensity(core.exit_waves(t, pos[k, b]))
                loss = ((torch.sqrt(model + 1e-6) - amp[k, b]) ** 2).mean()
                opt.zero_grad()
                if probe_opt is not None:
                    probe_opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if probe_on:
                    probe_opt.step()
                    probe_sched.step()
        if probe_on:
            with torch.no_grad():
                pr.copy_(orthogonalize_modes(pr) * math.sqrt(power / float((pr.abs() ** 2).sum())))
    phases = torch.stack([_compose(pyr, scales, (H, W)).detach().sum(0) for pyr in pyramids])
    with torch.no_grad():
        return phases.cpu().numpy(), (probe_at(0.0) if refine_probe else pr).cpu().numpy()


def reconstruct_angle(intensities: np.ndarray, probe: np.ndarray, top_left: np.ndarray, grid: BeamGrid,
                      theta_rad: float, wavelength_m: float, **kw) -> np.ndarray:
    """Projected phase ``(height, width)`` of one angle's patterns ``(N, h, w)`` with a known probe."""
    return reconstruct_angles(intensities[None], probe, top_left[None], grid, [theta_rad], wavelength_m, **kw)[0][0]


def _compose(pyramid: list[torch.Tensor], scales: tuple[int, ...], shape: tuple[int, int]) -> torch.Tensor:
    """φ = Σ_s upsample_s(φ_s): fine pixels plus bilinearly upsampled coarse levels ``(L, H, W)``."""
    out = pyramid[0]
    for p, f in zip(pyramid[1:], scales[1:]):
        up = torch.nn.functional.interpolate(p[None], scale_factor=f, mode="bilinear", align_corners=False)[0]
        out = out + up[:, :shape[0], :shape[1]]
    return out

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

Detector: residuals at bad pixels (``bad_pixels (h, w)``, True = bad) and at counts ≥
``saturation_level`` are left out of the loss (:func:`rapidtomo.physics.detector.valid_pixels`).

Position refinement (``refine_positions``, as LSQ-ML in PtychoShelves and pty-chi): the corners
are the nominal ones plus a per-position shift ``(K, N, 2)`` in pixels, applied as the probe's
Fourier sub-pixel shift (:func:`rapidtomo.physics.multislice.shift_probe`). From epoch
``position_start_epoch`` (the object first takes a rough form), after each batch's object step,
each of its positions moves by ``position_step`` × the least-squares shift that best explains the
exit-wave correction χ (the amplitude projection's change, at valid pixels) with the exit wave's
derivative in the position, per axis ``Δ = Σ Re(conj(∂ψ/∂r)·χ) / Σ |∂ψ/∂r|²``
(:meth:`rapidtomo.physics.multislice.Multislice.exit_wave_derivatives`), at most ½ pixel per
update. After every epoch the shifts of each angle have their mean removed (a common shift of all
positions is a shift of the object, which the data cannot see; the nominal positions keep the
registration between angles) and are clipped to ``±max_position_shift_px`` and to the slice grid.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..physics.geometry import BeamGrid
from typing import NamedTuple

from ..physics.detector import as_mask_tensor, valid_pixels
from ..physics.multislice import Multislice, axial_wavenumber, far_field_intensity
from ..physics.operator import transmission


class PtychographyResult(NamedTuple):
    """``phases (K, height, width)`` rad, ``probe (M, h, w)``, ``top_left (K, N, 2)`` pixels (refined
    when positions were refined, else the given ones)."""

    phases: np.ndarray
    probe: np.ndarray
    top_left: np.ndarray


def illumination(top_left: np.ndarray, probe: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Σ over positions of the probe intensity on the slice grid ``(H, W)`` (how well each pixel is lit);
    corners ``(N, 2)`` rounded to the nearest pixel."""
    h, w = probe.shape[-2:]
    p = (np.abs(probe) ** 2).sum(0)
    out = np.zeros(shape)
    for r, c in np.rint(np.asarray(top_left)).astype(np.int64):
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
                       scales: tuple[int, ...] = (1, 4, 16), bad_pixels: np.ndarray | None = None,
                       saturation_level: float | None = None, refine_positions: bool = False,
                       position_step: float = 1.0, position_start_epoch: int = 3,
                       max_position_shift_px: float = 3.0, device="cpu") -> PtychographyResult:
    """Projected phases ``(K, height, width)`` (radians), the probe ``(M, h, w)`` at b = 0 and the corners of K angles.

    ``intensities (K, N, h, w)``, ``top_left (K, N, 2)`` (pixels, fractional allowed) on the
    slice grid of ``grid`` (whose
    ``n_slabs`` slices split the sample's extent at each θ of ``thetas_rad``; 1 = projection
    approximation), ``probe (M, h, w)`` the initial (or known) probe at b = 0. Every epoch visits each
    angle's positions in a seeded random order, the angles interleaved batch by batch, so a shared
    probe sees them all. Without ``refine_probe`` the probe is returned unchanged, without
    ``refine_positions`` the corners.
    """
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    K, n = intensities.shape[:2]
    amp = torch.as_tensor(np.sqrt(np.maximum(intensities, 0)), dtype=torch.float32, device=dev)
    pos = torch.as_tensor(np.asarray(top_left, np.float64), device=dev).float()
    data = amp if saturation_level is None else torch.as_tensor(np.asarray(intensities), dtype=torch.float32,
                                                                device=dev)
    bad = as_mask_tensor(bad_pixels, dev)
    shift = torch.zeros_like(pos)
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
    upper = torch.tensor([H - probe.shape[-2], W - probe.shape[-1]], dtype=pos.dtype, device=dev)
    spacing = [grid.slab_thickness_m(float(th)) for th in thetas_rad]
    fixed = None if refine_probe else [probe_at(z) for z in first]  # a known probe: propagated once
    for epoch in range(epochs):
        orders = [torch.randperm(n, generator=g).to(dev) for _ in range(K)]
        probe_on = refine_probe and epoch >= probe_start_epoch
        positions_on = refine_positions and epoch >= position_start_epoch
        for i in range(0, n, batch_size):
            for k in range(K):
                b = orders[k][i:i + batch_size]
                t = transmission(_compose(pyramids[k], scales, (H, W)), mus[k])
                core = Multislice(probe_at(first[k]) if fixed is None else fixed[k], wavelength_m=wavelength_m,
                                  pixel_size_m=grid.pixel_m, slice_spacing_m=spacing[k])
                corners = pos[k, b] + shift[k, b]
                psi = core.exit_waves(t, corners)
                model = far_field_intensity(psi)
                residual = (torch.sqrt(model + 1e-6) - amp[k, b]) ** 2
                weight = valid_pixels(data[k, b], bad, saturation_level)
                loss = (residual if weight is None else residual * weight).mean()
                opt.zero_grad()
                if probe_opt is not None:
                    probe_opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if probe_on:
                    probe_opt.step()
                    probe_sched.step()
                if positions_on:
                    with torch.no_grad():
                        shift[k, b] += position_step * _position_update(core, t.detach(), corners, psi.detach(),
                                                                        amp[k, b], weight)
        if positions_on:
            with torch.no_grad():
                shift -= shift.mean(dim=1, keepdim=True)
                shift.clamp_(-max_position_shift_px, max_position_shift_px)
                shift.copy_(torch.minimum(torch.clamp(pos + shift, min=0), upper) - pos)
        if probe_on:
            with torch.no_grad():
                pr.copy_(orthogonalize_modes(pr) * math.sqrt(power / float((pr.abs() ** 2).sum())))
    phases = torch.stack([_compose(pyr, scales, (H, W)).detach().sum(0) for pyr in pyramids])
    corners = np.asarray(top_left, np.float64) + shift.detach().double().cpu().numpy()
    with torch.no_grad():
        return PtychographyResult(phases.cpu().numpy(), (probe_at(0.0) if refine_probe else pr).cpu().numpy(),
                                  corners)


def reconstruct_angle(intensities: np.ndarray, probe: np.ndarray, top_left: np.ndarray, grid: BeamGrid,
                      theta_rad: float, wavelength_m: float, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Projected phase ``(height, width)`` of one angle's patterns ``(N, h, w)`` with a known probe, and
    the corners ``(N, 2)`` (refined with ``refine_positions``)."""
    r = reconstruct_angles(intensities[None], probe, np.asarray(top_left)[None], grid, [theta_rad], wavelength_m,
                           **kw)
    return r.phases[0], r.top_left[0]


def _position_update(core: Multislice, slices: torch.Tensor, corners: torch.Tensor, psi: torch.Tensor,
                     amp: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Least-squares shifts ``(B, 2)`` (pixels, each within ±½) of positions ``corners (B, 2)`` given
    their exit waves ``psi (B, M, h, w)`` and measured amplitudes ``amp (B, h, w)`` (DC centred)."""
    F = torch.fft.fft2(psi)
    modulus = torch.sqrt((F.abs() ** 2).sum(1, keepdim=True))
    ratio = torch.fft.ifftshift(amp, dim=(-2, -1))[:, None] / (modulus + 1e-6) - 1
    if weight is not None:
        ratio = ratio * torch.fft.ifftshift(weight, dim=(-2, -1))[:, None]
    chi = torch.fft.ifft2(F * ratio)
    # the derivative with the window following the object (the object moving under a fixed window,
    # as LSQ-ML writes it): moving the probe and then translating the whole exit wave back changes
    # no intensity, so that translation, +∂ψ/∂x, is added; it leaves only the part the data can see
    h, w = psi.shape[-2:]
    real = amp.dtype
    k = (torch.fft.fftfreq(h, device=psi.device, dtype=real)[:, None],
         torch.fft.fftfreq(w, device=psi.device, dtype=real)[None, :])
    d = core.exit_wave_derivatives(slices, corners) + torch.stack([torch.fft.ifft2(F * (2j * math.pi * ki))
                                                                   for ki in k])
    num = (d.conj() * chi[None]).real.sum(dim=(2, 3, 4))
    den = (d.abs() ** 2).sum(dim=(2, 3, 4))
    return (num / (den + 1e-12 * den.max())).clamp(-0.5, 0.5).T.to(corners.dtype)


def _compose(pyramid: list[torch.Tensor], scales: tuple[int, ...], shape: tuple[int, int]) -> torch.Tensor:
    """φ = Σ_s upsample_s(φ_s): fine pixels plus bilinearly upsampled coarse levels ``(L, H, W)``."""
    out = pyramid[0]
    for p, f in zip(pyramid[1:], scales[1:]):
        up = torch.nn.functional.interpolate(p[None], scale_factor=f, mode="bilinear", align_corners=False)[0]
        out = out + up[:, :shape[0], :shape[1]]
    return out

"""A focused Fresnel-zone-plate probe and its mutually orthogonal coherent modes.

The zone plate's far-field pupil is an annulus (outer radius NA/λ = 1/(2·Δr) in spatial
frequency, central stop as a fraction of the diameter); the probe at the sample is the pupil's
inverse Fourier transform, defocused by angular-spectrum propagation. Partial coherence is
modelled by M coherent modes of a Gaussian Schell-model cross-spectral density
(:func:`gaussian_schell_modes`); :func:`probe_modes` makes the polynomial-times-probe modes that
serve as the *initial guess* of a reconstruction (as PtychoShelves initialises extra modes).
"""
from __future__ import annotations

import math

import numpy as np

from .geometry import wavelength_m as _wavelength


def zone_plate_probe(n: int, pixel_size_m: float, energy_kev: float, *, outer_zone_width_m: float = 50e-9,
                     zone_plate_diameter_m: float = 180e-6, central_stop_fraction: float = 1 / 3,
                     spot_fraction: float = 0.4, defocus_m: float | None = None,
                     defocus_error: float = 0.0) -> np.ndarray:
    """One coherent probe ``(n, n)`` complex128 on the object grid, unit total power Σ|P|² = 1.

    ``defocus_m`` (downstream of the focus) defaults to the distance at which the geometric
    spot diameter D·z/f equals ``spot_fraction`` of the window (f = D·Δr/λ). The pupil is cut at
    the window's Nyquist frequency if the zone plate's NA exceeds it. ``defocus_error`` scales
    the defocus by ``1 + defocus_error`` (a deliberately wrong model, e.g. +0.3 for an initial guess).
    """
    lam = _wavelength(energy_kev)
    focal = zone_plate_diameter_m * outer_zone_width_m / lam
    if defocus_m is None:
        defocus_m = spot_fraction * n * pixel_size_m * focal / zone_plate_diameter_m
    defocus_m *= 1.0 + defocus_error
    f = np.fft.fftfreq(n, d=pixel_size_m)
    fr = np.hypot(f[:, None], f[None, :])
    f_out = min(1 / (2 * outer_zone_width_m), 0.5 / pixel_size_m)
    pupil = ((fr <= f_out) & (fr >= central_stop_fraction * f_out)).astype(np.complex128)
    arg = np.maximum(1 / lam**2 - fr**2, 0.0)
    pupil *= np.exp(1j * 2 * math.pi * defocus_m * (np.sqrt(arg) - 1 / lam))
    probe = np.fft.fftshift(np.fft.ifft2(pupil))
    return probe / np.sqrt(np.sum(np.abs(probe) ** 2))


def spot_diameter_m(n: int, pixel_size_m: float, spot_fraction: float = 0.4) -> float:
    """The zone-plate probe's geometric spot diameter (m) for :func:`zone_plate_probe`'s default defocus."""
    return spot_fraction * n * pixel_size_m


def gaussian_schell_modes(probe: np.ndarray, n_modes: int, coherence_length_m: float, pixel_size_m: float,
                          rank_tolerance: float = 1e-10) -> np.ndarray:
    """Coherent modes ``(M, n, n)`` of a partially coherent probe (Gaussian Schell model).

    The cross-spectral density at the sample is ``W(r1, r2) = P*(r1) P(r2) μ(r1 − r2)`` with the
    complex degree of coherence ``μ(d) = exp(−|d|²/(2ξ²))``, ξ = ``coherence_length_m``; its
    eigenfunctions are the modes, ``W(r1, r2) = Σ_m ψ_m*(r1) ψ_m(r2)``, ordered by power. μ is
    separable, so with the 1D kernels' eigen-decompositions ``K_y = U Λ Uᵀ`` (and K_x) W factors as
    ``W = conj(B) Bᵀ`` with columns ``b_jk = sqrt(λ_j λ_k)·P·(u_j ⊗ u_k)``, components below
    ``rank_tolerance`` of the largest dropped; the modes are the left singular vectors of B times
    its singular values, found from the small Gram matrix ``Bᴴ B``. Kept modes are rescaled to
    the total power ``trace W = Σ|P|²`` (what the source delivers; exact when ``n_modes`` reaches
    the rank). ``probe (n, n)``.
    """
    if n_modes < 1:
        raise ValueError("n_modes must be ≥ 1")
    if coherence_length_m <= 0:
        raise ValueError(f"coherence_length_m must be positive, got {coherence_length_m}")
    h, w = probe.shape
    factors = []
    for size in (h, w):
        d = (np.arange(size)[:, None] - np.arange(size)[None, :]) * pixel_size_m
        lam, u = np.linalg.eigh(np.exp(-d**2 / (2 * coherence_length_m**2)))
        factors.append((np.maximum(lam, 0.0), u))
    (ly, uy), (lx, ux) = factors
    lam2 = ly[:, None] * lx[None, :]
    j, k = np.nonzero(lam2 >= rank_tolerance * lam2.max())
    B = np.sqrt(lam2[j, k])[:, None, None] * uy.T[j][:, :, None] * ux.T[k][:, None, :] * probe[None]
    B = B.reshape(len(j), -1)  # (r, n²): one row per kernel component
    power, v = np.linalg.eigh(B.conj() @ B.T)  # the r x r Gram matrix shares B's nonzero singular values
    m = min(n_modes, len(power))
    modes = (v[:, ::-1][:, :m].T @ B).reshape(m, h, w)  # B v_m = the mode with power s_m²
    modes *= np.exp(-1j * np.angle(np.einsum("mij,ij->m", modes.conj(), probe)))[:, None, None]  # phase: like P
    return modes * np.sqrt(np.sum(np.abs(probe) ** 2) / np.sum(np.abs(modes) ** 2))


def probe_modes(probe: np.ndarray, n_modes: int, decay: float = 0.5) -> np.ndarray:
    """``(M, n, n)`` orthogonal modes from a coherent probe, powers ∝ decay^m, total power kept.

    Mode m is the probe times a low-order Hermite-like polynomial in (y, x) (orders 0, x, y,
    x², xy, y², ...), then Gram–Schmidt orthogonalised; mode 0 is the probe itself. This is an
    *initial guess* of the modes for a reconstruction (not a physical coherence model: see
    :func:`gaussian_schell_modes`).
    """
    n = probe.shape[-1]
    if n_modes < 1:
        raise ValueError("n_modes must be ≥ 1")
    yy, xx = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    orders = [(i - j, j) for i in range(n_modes + 1) for j in range(i + 1)][:n_modes]
    basis = np.stack([probe * xx**a * yy**b for a, b in orders]).reshape(n_modes, -1)
    q, _ = np.linalg.qr(basis.T)  # orthonormal columns spanning the same nested subspaces
    modes = q.T.reshape(n_modes, n, n)
    modes *= np.exp(-1j * np.angle(np.vdot(modes[0], probe)))  # mode 0 has the probe's phase
    power = decay ** np.arange(n_modes)
    power *= np.sum(np.abs(probe) ** 2) / power.sum()
    return modes * np.sqrt(power)[:, None, None]


def downsample_probe(probe: np.ndarray) -> np.ndarray:
    """The probe on the 2x coarser grid that matches keeping the central half of the patterns.

    Keeping the central ``n/2`` frequencies of the far field is the same as cropping the probe's
    spectrum; the coarse probe is ``ifft2`` of the central half of ``fft2(probe)``, scaled so the
    far-field amplitudes are unchanged (unnormalised FFTs): ``(M, n, n) → (M, n/2, n/2)``.
    """
    n = probe.shape[-1]
    if n % 2:
        raise ValueError(f"probe size {n} must be even to halve")
    F = np.fft.fftshift(np.fft.fft2(probe), axes=(-2, -1))
    c = F[..., n // 4: n // 4 + n // 2, n // 4: n // 4 + n // 2]
    return np.fft.ifft2(np.fft.ifftshift(c, axes=(-2, -1)))


def crop_patterns_center(intensities: np.ndarray) -> np.ndarray:
    """Central half ``(..., h/2, w/2)`` of DC-centred diffraction patterns ``(..., h, w)``."""
    h, w = intensities.shape[-2:]
    return intensities[..., h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2]

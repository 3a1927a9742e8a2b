"""The multislice forward model (paper Eq. 1–2), pinned as in docs/conventions.md.

Slices ``(L, H, W)`` complex transmissions, probe modes ``(M, h, w)``, top-left positions
``(N, 2)`` as ``(row, col)`` in pixels, integer or not. A corner ``r`` is cut at the nearest
integer ``r₀`` and the probe is moved by the rest ``f = r − r₀`` (|f| ≤ ½) with a Fourier shift,
``P(· − f)`` (:func:`shift_probe`): the window sees the object at ``r + i`` exactly as the
probe's sample ``i`` does, up to the circular wrap of the shift (as in PtychoShelves, pty-chi).
Differentiable in the fractional positions; integer positions (all ``f = 0``) skip the shift
and cost nothing extra. For each position: ψ = probe · t₁[patch]; for
l = 2..L: ψ = P_Δz ψ, then ψ = ψ · t_l[patch]; far field ``fftshift(fft2(ψ))`` (unnormalised);
intensity = Σ_modes |·|². Numpy in → numpy out, torch in → torch out (same device); complex64 by
default, complex128 when given double precision. Differentiable (autograd) in torch.

Two engines compute :func:`forward_intensity`: torch (autograd, CUDA) and, on the CPU when nothing
needs a gradient, FFTW (:mod:`rapidtomo.physics.fftw_backend`, 2–3x faster there). They agree to
rounding. ``backend=`` or the environment variable ``RAPIDTOMO_FORWARD_BACKEND`` (``auto``,
``torch``, ``fftw``) chooses; ``auto`` takes FFTW when it applies and pyfftw is installed.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
import torch

from . import fftw_backend

BACKEND_ENV = "RAPIDTOMO_FORWARD_BACKEND"
_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128,
               torch.complex64: torch.complex64, torch.complex128: torch.complex128}


def _as_complex_tensor(x, device=None, dtype=None) -> torch.Tensor:
    t = torch.as_tensor(x, device=device)
    if dtype is None:
        dtype = _COMPLEX_OF.get(t.dtype, torch.complex64)
    return t.to(dtype)


def axial_wavenumber(shape: tuple[int, int], wavelength_m: float,
                     pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """``k_z = 2π·sqrt(1/λ² − fx² − fy²)`` (rad/m) ``(h, w)`` on ``fftfreq(n, d=pixel)`` frequencies
    (unshifted), and the mask of propagating components; ``k_z = 0`` where evanescent."""
    fy = np.fft.fftfreq(shape[0], d=pixel_size_m)
    fx = np.fft.fftfreq(shape[1], d=pixel_size_m)
    arg = 1.0 / wavelength_m**2 - fy[:, None] ** 2 - fx[None, :] ** 2
    propagating = arg > 0
    return 2 * math.pi * np.sqrt(np.maximum(arg, 0.0)), propagating


@lru_cache(maxsize=64)
def _kernel(shape: tuple[int, int], dz_m: float, wavelength_m: float, pixel_size_m: float) -> np.ndarray:
    kz, propagating = axial_wavenumber(shape, wavelength_m, pixel_size_m)
    kernel = np.where(propagating, np.exp(1j * dz_m * kz), 0.0)
    kernel.flags.writeable = False
    return kernel


def transfer_function(shape: tuple[int, int], dz_m: float, wavelength_m: float, pixel_size_m: float) -> np.ndarray:
    """Angular-spectrum transfer function ``exp(i·2π·Δz·sqrt(1/λ² − fx² − fy²))``, ``(h, w)`` complex128.

    The one kernel of both engines. Frequencies ``fftfreq(n, d=pixel)`` (unshifted, to multiply
    an ``fft2`` spectrum); evanescent components set to 0. Since the mask is real,
    ``conj(H_Δz) = H_−Δz``: propagation by ``−dz`` is the exact adjoint of propagation by ``dz``,
    and its inverse only on the propagating band. Cached, read-only.
    """
    return _kernel(tuple(int(s) for s in shape), float(dz_m), float(wavelength_m), float(pixel_size_m))


def propagate(psi, dz_m: float, *, wavelength_m: float, pixel_size_m: float):
    """Free-space propagation P_Δz of fields ``(..., h, w)`` by ``dz_m`` metres (numpy or torch)."""
    is_np = isinstance(psi, np.ndarray)
    t = _as_complex_tensor(psi)
    H = torch.tensor(transfer_function(t.shape[-2:], dz_m, wavelength_m, pixel_size_m), dtype=t.dtype, device=t.device)
    out = torch.fft.ifft2(torch.fft.fft2(t) * H)
    return out.numpy() if is_np else out


def extract_patches(slices: torch.Tensor, positions: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Patches ``(L, N, h, w)`` of ``slices (L, H, W)`` at top-left ``positions (N, 2)`` (gather)."""
    L, H, W = slices.shape
    h, w = window
    rows = positions[:, 0, None, None] + torch.arange(h, device=slices.device)[None, :, None]
    cols = positions[:, 1, None, None] + torch.arange(w, device=slices.device)[None, None, :]
    return slices.reshape(L, H * W)[:, rows * W + cols]


def split_positions(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Integer corners ``(N, 2)`` long (nearest) and the fractional rest ``(N, 2)`` in ``[−½, ½]``,
    or None when the positions are integers (an integer dtype, or all rests 0 and no gradient)."""
    if not (positions.is_floating_point()):
        return positions.long(), None
    corner = torch.round(positions.detach())
    rest = positions - corner
    if not rest.requires_grad and not bool(torch.any(rest != 0)):
        return corner.long(), None
    return corner.long(), rest


def shift_probe(probe: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Probe modes ``(M, h, w)`` moved by ``shift (N, 2)`` pixels (row, col) → ``(N, M, h, w)``.

    ``P_f(x) = P(x − f)``: the spectrum times ``exp(−2πi·(k_y·f_y + k_x·f_x))``, k = fftfreq
    (cycles per pixel); circular; an integer shift is ``torch.roll``. Differentiable in ``shift``.
    """
    h, w = probe.shape[-2:]
    real = probe.real.dtype
    ky = torch.fft.fftfreq(h, device=probe.device, dtype=real)
    kx = torch.fft.fftfreq(w, device=probe.device, dtype=real)
    s = shift.to(real)
    ramp = -2 * math.pi * (s[:, 0, None, None] * ky[None, :, None] + s[:, 1, None, None] * kx[None, None, :])
    return torch.fft.ifft2(torch.fft.fft2(probe)[None] * torch.polar(torch.ones_like(ramp), ramp)[:, None])


def far_field_intensity(psi: torch.Tensor) -> torch.Tensor:
    """``Σ_modes |fftshift(fft2(ψ))|²`` for exit waves ``(N, M, h, w)`` → ``(N, h, w)`` real."""
    F = torch.view_as_real(torch.fft.fft2(psi))
    return torch.fft.fftshift(F.square().sum(dim=(1, -1)), dim=(-2, -1))


class Multislice:
    """The multislice core (Eq. 1–2) for one probe, wavelength, pixel and slice spacing.

    Built once (its propagator is made on construction and shared by both engines); applied to
    complex slices ``(L, H, W)`` at top-left positions ``(N, 2)`` (integer, or fractional: see the
    module docstring):
    :meth:`exit_waves` (torch, differentiable) and :meth:`intensities` (torch or FFTW engine).

    Parameters
    ----------
    probe : (M, h, w) or (h, w) complex probe modes at the first slice's plane (numpy or torch)
    wavelength_m, pixel_size_m, slice_spacing_m : λ, slice pixel, distance Δz between slices (m)
    """

    def __init__(self, probe, *, wavelength_m: float, pixel_size_m: float, slice_spacing_m: float):
        p = _as_complex_tensor(probe)
        self.probe = p[None] if p.ndim == 2 else p
        if self.probe.ndim != 3:
            raise ValueError(f"expected probe modes (M, h, w), got {tuple(self.probe.shape)}")
        self.wavelength_m = float(wavelength_m)
        self.pixel_size_m = float(pixel_size_m)
        self.slice_spacing_m = float(slice_spacing_m)
        self.kernel = transfer_function(self.window, self.slice_spacing_m, self.wavelength_m, self.pixel_size_m)
        self._propagators: dict[tuple, torch.Tensor] = {}

    @property
    def window(self) -> tuple[int, int]:
        return tuple(self.probe.shape[-2:])

    def _propagator(self, dtype: torch.dtype, device) -> torch.Tensor:
        """The kernel ``/ (h·w)`` (the inverse FFT's normalisation folded in) as a tensor, made once."""
        key = (dtype, torch.device(device))
        if key not in self._propagators:
            k = self.kernel / (self.window[0] * self.window[1])
            self._propagators[key] = torch.as_tensor(k).to(device=device, dtype=dtype)
        return self._propagators[key]

    def fftw_propagator(self, dtype) -> np.ndarray:
        """The kernel divided by ``h·w`` in ``dtype``, as :func:`fftw_backend.forward_intensity` takes it."""
        return (self.kernel / (self.window[0] * self.window[1])).astype(dtype)

    def _probe_like(self, t: torch.Tensor) -> torch.Tensor:
        return self.probe.to(device=t.device, dtype=t.dtype)

    def exit_waves(self, slices: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Exit waves ``(N, M, h, w)`` after the last slice (no propagation after it); torch, autograd
        (in the slices, the probe and fractional positions)."""
        probe = self._probe_like(slices)
        corner, rest = split_positions(positions)
        patches = extract_patches(slices, corner, self.window)
        return self._through(probe[None] if rest is None else shift_probe(probe, rest), patches)

    def exit_wave_derivatives(self, slices: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``∂ψ/∂(row, col)`` of the exit waves: ``(2, N, M, h, w)`` per pixel of position.

        The exit wave is linear in the probe, so its derivative is the multislice of the moved
        probe's derivative, ``−∂P(· − f)/∂x`` (spectrum times ``−2πi·k``), through the same slices.
        """
        probe = self._probe_like(slices)
        corner, rest = split_positions(positions.to(probe.real.dtype))
        patches = extract_patches(slices, corner, self.window)
        moved = probe[None].expand(len(corner), -1, -1, -1) if rest is None else shift_probe(probe, rest)
        h, w = self.window
        real = probe.real.dtype
        k = (torch.fft.fftfreq(h, device=probe.device, dtype=real)[:, None],
             torch.fft.fftfreq(w, device=probe.device, dtype=real)[None, :])
        spec = torch.fft.fft2(moved)
        return torch.stack([self._through(torch.fft.ifft2(spec * (-2j * math.pi * ki)), patches) for ki in k])

    def _through(self, probes: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Probes ``(N or 1, M, h, w)`` through the slices' patches ``(L, N, h, w)`` → exit waves ``(N, M, h, w)``."""
        psi = probes * patches[0][:, None]
        if patches.shape[0] > 1:
            # P_Δz with the inverse FFT's 1/(h·w) folded in; in place on the spectrum (autograd-safe:
            # the product with a constant needs no saved input)
            prop = self._propagator(psi.dtype, psi.device)
            for t in patches[1:]:
                F = torch.fft.fft2(psi)
                F.mul_(prop)
                psi = torch.fft.ifft2(F, norm="forward") * t[:, None]
        return psi

    def intensities(self, slices, positions, *, batch_size: int | None = None, backend: str | None = None):
        """Far-field intensities ``(N, h, w)`` of ``slices (L, H, W)`` at ``positions (N, 2)``.

        Numpy in → numpy out, torch in → torch out on the slices' device; float32 (float64 for
        complex128/float64 slices). ``batch_size`` positions per batch (bounds memory; default
        :func:`default_batch` for torch, cache-sized for FFTW). ``backend``: ``auto`` (default, or
        ``$RAPIDTOMO_FORWARD_BACKEND``), ``torch`` or ``fftw`` (CPU, no input requiring a gradient,
        integer positions; ``auto`` takes torch for fractional ones).
        """
        is_np = isinstance(slices, np.ndarray)
        t = _as_complex_tensor(slices)
        p = self._probe_like(t)
        pos = torch.as_tensor(np.asarray(positions) if not torch.is_tensor(positions) else positions,
                              device=t.device)
        if t.ndim != 3 or pos.ndim != 2 or pos.shape[-1] != 2:
            raise ValueError(f"expected slices (L, H, W) and positions (N, 2), got {tuple(t.shape)}, "
                             f"{tuple(pos.shape)}")
        corner, rest = split_positions(pos)
        pos = corner if rest is None else pos
        h, w = self.window
        if corner.numel() and (corner.min() < 0 or corner[:, 0].max() > t.shape[1] - h
                               or corner[:, 1].max() > t.shape[2] - w):
            raise ValueError("a probe window at these positions leaves the slice grid")
        if _use_fftw(backend, t, p, fractional=rest is not None):
            t_np = t.detach().resolve_conj().numpy()
            p_np = np.ascontiguousarray(p.detach().resolve_conj().numpy())
            I = fftw_backend.forward_intensity(t_np, p_np, pos.numpy(), propagator=self.fftw_propagator(t_np.dtype),
                                               threads=torch.get_num_threads(), batch_size=batch_size)
            return I if is_np else torch.from_numpy(I)
        bs = batch_size or default_batch(p.shape[0], (h, w), t.shape[0])
        out = [far_field_intensity(self.exit_waves(t, pos[i:i + bs])) for i in range(0, len(pos), bs)]
        I = torch.cat(out) if out else torch.zeros((0, h, w), dtype=t.real.dtype, device=t.device)
        return I.detach().cpu().numpy() if is_np else I


def exit_waves(slices: torch.Tensor, probe: torch.Tensor, positions: torch.Tensor, *, wavelength_m: float,
               pixel_size_m: float, slice_spacing_m: float) -> torch.Tensor:
    """Exit waves ``(N, M, h, w)``: :meth:`Multislice.exit_waves` of a one-off :class:`Multislice`."""
    return Multislice(probe, wavelength_m=wavelength_m, pixel_size_m=pixel_size_m,
                      slice_spacing_m=slice_spacing_m).exit_waves(slices, positions)


def default_batch(n_modes: int, window: tuple[int, int], n_slices: int, budget_bytes: float = 2.5e8) -> int:
    """Positions per batch so that one batch's complex128 working set stays near ``budget_bytes``."""
    per_position = 16 * n_modes * window[0] * window[1] * (3 + n_slices / n_modes)
    return max(1, int(budget_bytes // per_position))


def _use_fftw(backend: str | None, t: torch.Tensor, p: torch.Tensor, fractional: bool = False) -> bool:
    backend = (backend or os.environ.get(BACKEND_ENV) or "auto").lower()
    if backend not in ("auto", "torch", "fftw"):
        raise ValueError(f"forward model backend must be auto, torch or fftw, got {backend!r}")
    if backend == "torch":
        return False
    needs_grad = torch.is_grad_enabled() and (t.requires_grad or p.requires_grad)
    applies = t.device.type == "cpu" and not needs_grad and not fractional
    if backend == "fftw":
        if not fftw_backend.available():
            raise RuntimeError("backend='fftw' asked for, but pyfftw is not installed")
        if not applies:
            raise ValueError("the FFTW backend runs on the CPU without autograd at integer positions; "
                             "use backend='torch'")
        return True
    return applies and fftw_backend.available()


def forward_intensity(slices, probe, positions, *, wavelength_m: float, pixel_size_m: float,
                      slice_spacing_m: float, batch_size: int | None = None, backend: str | None = None):
    """Far-field intensities ``(N, h, w)`` of the multislice model (docs/conventions.md).

    Parameters
    ----------
    slices : (L, H, W) complex transmissions (numpy or torch; real input is taken as complex)
    probe : (M, h, w) or (h, w) complex probe modes
    positions : (N, 2) top-left ``(row, col)`` corners in the slice grid (pixels; fractional ones
        move the probe by a Fourier shift, see the module docstring)
    wavelength_m, pixel_size_m, slice_spacing_m : λ, slice pixel, distance between slices (m)
    batch_size, backend : see :meth:`Multislice.intensities`

    Returns intensities as numpy when ``slices`` is numpy, else torch on the slices' device;
    float32 (float64 when the slices are complex128/float64).
    """
    t = _as_complex_tensor(slices)
    ms = Multislice(_as_complex_tensor(probe, device=t.device, dtype=t.dtype), wavelength_m=wavelength_m,
                    pixel_size_m=pixel_size_m, slice_spacing_m=slice_spacing_m)
    return ms.intensities(slices if isinstance(slices, np.ndarray) else t, positions, batch_size=batch_size,
                          backend=backend)

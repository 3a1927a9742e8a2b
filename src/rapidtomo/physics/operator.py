"""The ptycho-tomographic forward operator H_θ: rotate → L slabs → transmission → multislice → |F|².

``H_θ(φ, μ) = Σ_m |F t_{θ,L} P_Δz(θ) … P_Δz(θ) t_{θ,1} u_m|²`` (paper Eq. 2) with the slab
transmissions ``t_{θ,l} = exp(−i·φ_{θ,l} − μ_{θ,l})`` of the rotated volume (docs/conventions.md:
n = 1 − δ + iβ, fields ∝ exp(+i·k·z), volumes store φ = k·δ·Δ ≥ 0 and μ = k·β·Δ ≥ 0 per voxel;
the sign is applied here, in :func:`transmission`, and nowhere else). The slabs follow the sample:
at each angle they split the support's extent along the beam into L (``BeamGrid.slab_thickness_m``).
The probe ``u_m`` is the field at the plane through the rotation axis (b = 0), the same at every
angle; each angle propagates it (angular spectrum) to its first slab's centre,
``BeamGrid.first_slab_m(θ)``, where the multislice applies the first transmission (each slab's
transmission sits at its centre, Δz from the next), as the simulator's reference model does.

API::

    op = PtychoTomoOperator(grid, probe, wavelength_m)        # built once
    a = op.at(theta_rad)                                        # AngleOperator, cached per angle
    a.slab_phases(phi)           # (L, H, W) real, linear in phi (rotation + slab sums)
    a.transmission(phi, mu)      # (L, H, W) complex
    a.exit_waves(phi, top_left)  # (N, M, h, w) complex, differentiable
    a.intensities(phi, top_left) # (N, h, w) real (FFTW engine when no gradient is needed on the CPU)
    a.multislice                 # the Multislice core at this angle's slab spacing, probe at its first slab
    op.scan_intensities(phi, angles_rad, top_left, attenuation=mu)   # (n_angles, N, h, w) numpy

Volumes are torch ``(Z, Y, X)`` (phase and attenuation per voxel, radians); positions are
integer top-left corners ``(N, 2)`` on the slice grid. Torch throughout, differentiable in φ, μ.
"""
from __future__ import annotations

import numpy as np
import torch

from .geometry import BeamGrid
from .multislice import Multislice, propagate
from .rotation import interpolation_weights, slab_phases


def transmission(phase: torch.Tensor, attenuation: torch.Tensor | None = None) -> torch.Tensor:
    """Complex transmission ``exp(−i·φ − μ)`` of phase φ and attenuation μ (radians, ≥ 0 for matter).

    The one place where the sign of the object lives (docs/conventions.md).
    """
    amplitude = torch.ones_like(phase) if attenuation is None else torch.exp(-attenuation)
    return torch.polar(amplitude, -phase)


class AngleOperator:
    """H_θ for one angle: the rotation weights and the :class:`Multislice` at this angle's Δz.

    ``probe (M, h, w)`` is given at b = 0; the Multislice holds it propagated to the first slab's
    centre (made once, here).
    """

    def __init__(self, grid: BeamGrid, theta_rad: float, probe: torch.Tensor, wavelength_m: float,
                 real_dtype: torch.dtype):
        self.grid = grid
        self.theta_rad = float(theta_rad)
        self.weights = interpolation_weights(grid, self.theta_rad, probe.device, real_dtype)
        at_first = propagate(probe, grid.first_slab_m(self.theta_rad), wavelength_m=wavelength_m,
                             pixel_size_m=grid.pixel_m)
        self.multislice = Multislice(at_first, wavelength_m=wavelength_m, pixel_size_m=grid.pixel_m,
                                     slice_spacing_m=grid.slab_thickness_m(self.theta_rad))

    @property
    def slice_spacing_m(self) -> float:
        return self.multislice.slice_spacing_m

    def slab_phases(self, volume: torch.Tensor) -> torch.Tensor:
        """Line integrals of a per-voxel volume ``(Z, Y, X)`` through each slab, ``(L, height, width)``."""
        return slab_phases(volume, self.theta_rad, self.grid, self.weights)

    def transmission(self, phase: torch.Tensor, attenuation: torch.Tensor | None = None) -> torch.Tensor:
        """Slab transmissions ``(L, height, width)`` complex of the volume(s) ``(Z, Y, X)``."""
        mu = None if attenuation is None else self.slab_phases(attenuation)
        return transmission(self.slab_phases(phase), mu)

    def exit_waves(self, phase: torch.Tensor, top_left: torch.Tensor,
                   attenuation: torch.Tensor | None = None) -> torch.Tensor:
        """Exit waves ``(N, M, h, w)`` at top-left corners ``(N, 2)``."""
        return self.multislice.exit_waves(self.transmission(phase, attenuation), top_left)

    def intensities(self, phase: torch.Tensor, top_left: torch.Tensor, attenuation: torch.Tensor | None = None,
                    batch_size: int | None = None) -> torch.Tensor:
        """Far-field intensities ``(N, h, w)`` (torch) at top-left corners ``(N, 2)``."""
        return self.multislice.intensities(self.transmission(phase, attenuation), top_left, batch_size=batch_size)


class PtychoTomoOperator:
    """The forward operator of a scan: beam grid, probe modes ``(M, h, w)`` at b = 0 and wavelength, built once.

    ``dtype`` is the real precision (float32 or float64); the probe is held as the matching
    complex type on ``device``. :meth:`at` builds (and keeps) the :class:`AngleOperator` of an angle.
    """

    def __init__(self, grid: BeamGrid, probe, wavelength_m: float, *, device="cpu", dtype=torch.float32):
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        p = torch.as_tensor(np.asarray(probe) if not torch.is_tensor(probe) else probe)
        self.probe = (p[None] if p.ndim == 2 else p).to(device=device, dtype=cdtype)
        self.grid = grid
        self.wavelength_m = float(wavelength_m)
        self.dtype = dtype
        self._angles: dict[float, AngleOperator] = {}

    @property
    def device(self) -> torch.device:
        return self.probe.device

    def at(self, theta_rad: float) -> AngleOperator:
        """The operator H_θ of one angle (radians)."""
        key = float(theta_rad)
        if key not in self._angles:
            self._angles[key] = AngleOperator(self.grid, key, self.probe, self.wavelength_m, self.dtype)
        return self._angles[key]

    def scan_intensities(self, phase, angles_rad, top_left, attenuation=None, progress=None) -> np.ndarray:
        """Noiseless intensities ``(n_angles, N, h, w)`` float32 for every angle (numpy out).

        ``phase``, ``attenuation``: ``(Z, Y, X)`` per voxel (numpy or torch); ``top_left`` is
        ``(N, 2)`` (same scan at every angle) or ``(n_angles, N, 2)``. ``progress`` optionally
        wraps the angle iterator (a progress bar). Angle operators are not kept (one pass).
        """
        def as_volume(v):
            return None if v is None else torch.as_tensor(np.asarray(v), dtype=self.dtype, device=self.device)

        ph, mu = as_volume(phase), as_volume(attenuation)
        tl = np.asarray(top_left)
        out = None
        idx = range(len(angles_rad))
        with torch.no_grad():
            for i in (progress(idx) if progress else idx):
                pos = torch.as_tensor(tl[i] if tl.ndim == 3 else tl, device=self.device)
                op = AngleOperator(self.grid, float(angles_rad[i]), self.probe, self.wavelength_m, self.dtype)
                I = op.intensities(ph, pos, mu).cpu().numpy()
                if out is None:
                    out = np.empty((len(angles_rad),) + I.shape, dtype=np.float32)
                out[i] = I
        return out


def scan_intensities(phase, angles_rad, grid: BeamGrid, probe, top_left, wavelength_m: float,
                     attenuation=None, device="cpu", dtype=torch.float32, progress=None) -> np.ndarray:
    """:meth:`PtychoTomoOperator.scan_intensities` of a one-off operator (checks; the simulator
    builds one operator and calls it per angle)."""
    op = PtychoTomoOperator(grid, probe, wavelength_m, device=device, dtype=dtype)
    return op.scan_intensities(phase, angles_rad, top_left, attenuation=attenuation, progress=progress)

"""Simulating a ptycho-tomographic experiment: phantom → nominal and reduced-angle scans.

``simulate(settings)`` builds (or takes) a phase volume, a zone-plate probe with M modes, a snake
scan, and computes diffraction patterns for the nominal (many-angle) and the reduced acquisition
with the multislice operator H_θ, then Poisson noise at a mean photon count per pattern.
"""
from __future__ import annotations

import json
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from .config import Settings
from .device import pick_device
from .io import ScanData, Volume
from .physics.geometry import angle_set_deg, beam_grid, detector_distance_for_pixel, wavelength_m
from .physics.noise import poisson_noise
from .physics.operator import scan_intensities
from .physics.probe import probe_modes, zone_plate_probe
from .physics.scanning import scan_positions
from .progress import progress


class SimulateSettings(Settings):
    """Settings of ``rapidtomo simulate`` (section ``[simulate]`` of a config file)."""

    shape: tuple[int, int, int] = Field((32, 64, 256), description="phantom size (Z, Y, X) in voxels")
    voxel_size_m: float = Field(28e-9, gt=0, description="isotropic voxel size of the phantom = object pixel (m)")
    energy_kev: float = Field(8.8, gt=0, description="photon energy (keV)")
    detector_pixel_m: float = Field(75e-6, gt=0, description="detector pixel size (m)")
    detector_size: int = Field(32, ge=8, description="diffraction pattern size h = w (pixels); the probe window")
    detector_distance_m: float | None = Field(
        None, gt=0, description="sample-detector distance (m); default: the one giving voxel_size_m")
    n_modes: int = Field(2, ge=1, description="probe modes M (partial coherence)")
    spot_fraction: float = Field(0.4, gt=0, le=1, description="probe spot diameter as a fraction of the window")
    scan_step_px: int = Field(6, ge=1, description="largest scan step between neighbouring windows (pixels)")
    scan_pattern: Literal["snake", "raster"] = Field("snake", description="scan pattern")
    n_slabs: int = Field(5, ge=1, description="slabs L of the multislice model used to simulate")
    n_nominal: int = Field(120, ge=1, description="angles of the nominal (golden-standard) acquisition")
    n_reduced: int = Field(21, ge=1, description="angles of the reduced acquisition")
    theta_max_deg: float = Field(140.8, gt=0, le=180, description="angular range θmax of the reduced scan: "
                                 "angles in [-θmax/2, θmax/2]")
    theta_max_nominal_deg: float | None = Field(
        None, gt=0, le=180, description="angular range of the nominal scan (default: theta_max_deg, as in the "
        "paper); 180 removes the missing wedge from the golden standard")
    photons: float = Field(1e6, ge=0, description="mean photons per pattern; 0 means noiseless")
    seed: int = Field(0, description="seed of the phantom layout and the noise")
    device: str = Field("auto", description="torch device: auto, cpu, cuda")

    @model_validator(mode="after")
    def _check(self):
        if self.detector_size % 4:
            raise ValueError("detector_size must be a multiple of 4 (the approximant halves it)")
        return self

    @property
    def distance_m(self) -> float:
        return self.detector_distance_m or detector_distance_for_pixel(
            self.energy_kev, self.voxel_size_m, self.detector_pixel_m, self.detector_size)


def make_scan(volume: Volume, angles_deg: np.ndarray, settings: SimulateSettings, probe: np.ndarray,
              rng: np.random.Generator, desc: str) -> ScanData:
    """Simulate one acquisition of ``volume`` at ``angles_deg`` (noise drawn from ``rng``)."""
    n = settings.detector_size
    grid = beam_grid(volume.shape, volume.voxel_size_m, (n, n), settings.n_slabs, multiple=4)
    top_left = scan_positions(grid.slice_shape, (n, n), settings.scan_step_px, pattern=settings.scan_pattern)
    device = pick_device(settings.device)
    intensities = scan_intensities(
        volume.data, np.deg2rad(angles_deg), grid, probe, top_left, wavelength_m(settings.energy_kev),
        attenuation=volume.attenuation, device=device,
        progress=lambda it: progress(it, desc=desc, total=len(angles_deg), unit="angle"))
    if settings.photons > 0:
        intensities = poisson_noise(intensities, rng)
    return ScanData(intensities, grid.positions_m(top_left, (n, n)), angles_deg, probe.astype(np.complex64),
                    settings.energy_kev, settings.distance_m, settings.detector_pixel_m, volume.shape,
                    volume.voxel_size_m,
                    {"n_slabs": settings.n_slabs, "simulated": True, "settings": settings.to_dict()})


def make_probe(settings: SimulateSettings, pixel_m: float, transmitted_fraction: float = 1.0) -> np.ndarray:
    """Probe modes ``(M, n, n)`` scaled so a pattern holds ``photons`` (1e6 if noiseless) on average."""
    n = settings.detector_size
    p = probe_modes(zone_plate_probe(n, pixel_m, settings.energy_kev, spot_fraction=settings.spot_fraction),
                    settings.n_modes)
    photons = settings.photons or 1e6
    # unnormalised FFT: Σ|F ψ|² = n² Σ|ψ|², so scale Σ|P|² to photons / n²
    return p * np.sqrt(photons / (n * n * transmitted_fraction))


def default_phantom(settings: SimulateSettings) -> Volume:
    from .phantom import synthetic_ic
    d = settings.voxel_size_m
    return synthetic_ic(tuple(settings.shape), (d, d, d), energy_kev=settings.energy_kev, seed=settings.seed)


def simulate(settings: SimulateSettings, phantom: Volume | None = None) -> tuple[Volume, ScanData, ScanData]:
    """Phantom (given or synthetic IC), nominal scan and reduced scan of the same sample."""
    phantom = phantom if phantom is not None else default_phantom(settings)
    dz, dy, dx = phantom.voxel_size_m
    if abs(dy - dx) > 1e-6 * dx:
        raise ValueError(f"the phantom needs dy == dx (the ptychography pixel), got {phantom.voxel_size_m}")
    if abs(settings.voxel_size_m - dx) > 1e-6 * dx:
        if settings.detector_distance_m is not None:
            raise ValueError(f"detector distance {settings.detector_distance_m} m gives an object pixel of "
                             f"{settings.voxel_size_m:g} m, but the phantom's dx is {dx:g} m")
        settings = settings.model_copy(update={"voxel_size_m": dx})
    torch.manual_seed(settings.seed)
    probe = make_probe(settings, dx)
    rng = np.random.default_rng(settings.seed + 1)
    nominal_range = settings.theta_max_nominal_deg or settings.theta_max_deg
    nominal = make_scan(phantom, angle_set_deg(settings.n_nominal, nominal_range), settings, probe, rng,
                        "nominal scan")
    reduced = make_scan(phantom, angle_set_deg(settings.n_reduced, settings.theta_max_deg), settings, probe, rng,
                        "reduced scan")
    for s, kind in ((nominal, "nominal"), (reduced, "reduced")):
        s.attrs["acquisition"] = kind
        s.attrs["phantom"] = json.dumps({k: v for k, v in phantom.attrs.items() if k in ("phantom", "seed")})
    return phantom, nominal, reduced

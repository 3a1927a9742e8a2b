"""The conventional two-step reconstruction: per-angle ptychography → phase projections → FBP/SART.

With the nominal scan it makes the golden standard; with the reduced scan the FBP and SART
baselines. Per-angle projections are cached in an HDF5 side file keyed by the settings, so a
crashed run resumes at the first missing angle.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
from pydantic import Field

from ..config import Settings
from ..device import pick_device
from ..io import ScanData, Volume
from ..physics.geometry import beam_grid
from ..progress import progress
from .projections import align_projections, empty_mask, remove_offset_and_ramp, unwrap_if_wrapped
from .ptychography import illumination, reconstruct_angle
from .tomography import reconstruct


class TwoStepSettings(Settings):
    """Settings of ``rapidtomo golden`` / ``rapidtomo baseline`` (sections ``[golden]``, ``[baseline]``)."""

    method: Literal["sart", "fbp"] = Field("sart", description="tomography: SART (golden standard) or FBP")
    sweeps: int = Field(10, ge=1, description="SART passes over all angles (the paper: 10)")
    n_slices: int = Field(1, ge=1, description="multislice slices in per-angle ptychography (1: projection "
                          "approximation, enough when the sample is thinner than the depth of field)")
    epochs: int = Field(20, ge=1, description="ptychography passes over all positions per angle")
    batch_size: int = Field(32, ge=1, description="positions per ptychography update")
    lr_rad: float = Field(0.05, gt=0, description="ptychography Adam learning rate (rad)")
    refine_attenuation: bool = Field(True, description="also solve for attenuation (else pure phase)")
    ramp: bool = Field(True, description="remove a linear phase ramp (else only the offset) fitted on empty pixels")
    align: bool = Field(False, description="reprojection cross-correlation alignment of the projections")
    device: str = Field("auto", description="torch device for ptychography: auto, cpu, cuda")


def _settings_hash(scan: ScanData, s: TwoStepSettings) -> str:
    keep = {k: v for k, v in s.to_dict().items() if k not in ("method", "sweeps", "align", "device")}
    blob = json.dumps({"ptycho": keep, "angles": scan.angles_deg.tolist(), "shape": scan.intensities.shape,
                       "sum": float(scan.intensities[:, :, ::7, ::7].sum())}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def phase_projections(scan: ScanData, settings: TwoStepSettings, cache_path: str | Path | None = None
                      ) -> np.ndarray:
    """Per-angle ptychography + unwrapping + offset/ramp removal → ``(n_angles, Y, width)`` radians."""
    h, w = scan.intensities.shape[-2:]
    grid = beam_grid(scan.volume_shape, scan.voxel_size_m, (h, w), settings.n_slices).covering(scan.positions_m, (h, w))
    Y = scan.volume_shape[1]
    pad = (grid.height - Y) // 2
    device = pick_device(settings.device)
    key = _settings_hash(scan, settings)
    out = np.zeros((scan.n_angles, Y, grid.width), np.float32)
    cache = None
    if cache_path is not None:
        cache = h5py.File(cache_path, "a")
        if cache.attrs.get("key") != key:
            for name in list(cache):
                del cache[name]
            cache.attrs["key"] = key
    try:
        for i in progress(range(scan.n_angles), desc="ptychography", total=scan.n_angles, unit="angle"):
            name = f"angle_{i:05d}"
            if cache is not None and name in cache:
                out[i] = cache[name][()]
                continue
            tl = grid.top_left(scan.positions_m[i], (h, w))
            phase = reconstruct_angle(scan.intensities[i], scan.probe, tl, grid, scan.wavelength_m,
                                      n_slices=settings.n_slices, epochs=settings.epochs,
                                      batch_size=settings.batch_size, lr_rad=settings.lr_rad,
                                      refine_attenuation=settings.refine_attenuation, seed=i, device=device)
            phase = unwrap_if_wrapped(phase)[pad:pad + Y]
            lit = illumination(tl, scan.probe, grid.slice_shape)[pad:pad + Y]
            out[i] = remove_offset_and_ramp(phase, empty_mask(lit), settings.ramp) * (lit > 0.01 * lit.max())
            if cache is not None:
                cache[name] = out[i]
                cache.flush()
    finally:
        if cache is not None:
            cache.close()
    return out


def tomography(projections: np.ndarray, scan: ScanData, settings: TwoStepSettings) -> np.ndarray:
    """FBP or SART (per settings) of phase projections onto the scan's nominal grid."""
    return reconstruct(projections, scan.angles_deg, scan.volume_shape, scan.voxel_size_m, method=settings.method,
                       sweeps=settings.sweeps)


def two_step(scan: ScanData, settings: TwoStepSettings | None = None, cache_path: str | Path | None = None) -> Volume:
    """Golden standard (nominal scan, SART) or baseline (reduced scan, FBP/SART) as a Volume.

    The volume is phase per voxel on the scan's nominal grid ``volume_shape``/``voxel_size_m``,
    oriented like the simulated object. attrs hold the method and the seconds of each step.
    """
    settings = settings or TwoStepSettings()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    P = phase_projections(scan, settings, cache_path)
    t1 = time.perf_counter()
    shifts = None
    if settings.align:
        h, w = scan.intensities.shape[-2:]
        grid = beam_grid(scan.volume_shape, scan.voxel_size_m, (h, w), 1).covering(scan.positions_m, (h, w))
        P, shifts = align_projections(P, scan.angles_deg, scan.volume_shape, scan.voxel_size_m, grid)
    vol = tomography(P, scan, settings)
    t2 = time.perf_counter()
    attrs = {"quantity": "phase_rad_per_voxel", "stage": "two_step", "method": settings.method,
             "n_angles": int(scan.n_angles), "seconds_ptychography": t1 - t0, "seconds_tomography": t2 - t1,
             "settings": settings.to_dict()}
    if shifts is not None:
        attrs["alignment_shifts_px"] = shifts.tolist()
    return Volume(vol, scan.voxel_size_m, attrs)

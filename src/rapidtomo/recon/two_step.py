"""The conventional two-step reconstruction: per-angle ptychography → phase projections → FBP/SART.

With the nominal scan it makes the golden standard; with the reduced scan the FBP and SART
baselines. Per-angle projections are cached in an HDF5 side file keyed by the settings, so a
crashed run resumes at the first missing angle.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
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
    workers: int = Field(0, ge=0, description="CPU processes solving angles in parallel, one torch thread each "
                         "(0: torch's thread count, i.e. the cores or OMP_NUM_THREADS); 1 on CUDA")


def _settings_hash(scan: ScanData, s: TwoStepSettings) -> str:
    keep = {k: v for k, v in s.to_dict().items() if k not in ("method", "sweeps", "align", "device", "workers")}
    blob = json.dumps({"ptycho": keep, "angles": scan.angles_deg.tolist(), "shape": scan.intensities.shape,
                       "sum": float(scan.intensities[:, :, ::7, ::7].sum())}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _angle_projection(intensities: np.ndarray, probe: np.ndarray, top_left: np.ndarray, grid, wavelength_m: float,
                      settings: TwoStepSettings, seed: int, device, Y: int) -> np.ndarray:
    """One angle: ptychography, unwrapping, y crop, offset/ramp removal → ``(Y, width)`` radians."""
    phase = reconstruct_angle(intensities, probe, top_left, grid, wavelength_m, n_slices=settings.n_slices,
                              epochs=settings.epochs, batch_size=settings.batch_size, lr_rad=settings.lr_rad,
                              refine_attenuation=settings.refine_attenuation, seed=seed, device=device)
    pad = (grid.height - Y) // 2
    phase = unwrap_if_wrapped(phase)[pad:pad + Y]
    lit = illumination(top_left, probe, grid.slice_shape)[pad:pad + Y]
    return remove_offset_and_ramp(phase, empty_mask(lit), settings.ramp) * (lit > 0.01 * lit.max())


def _in_worker(i: int, *args) -> tuple[int, np.ndarray]:
    return i, _angle_projection(*args)


def n_workers(settings: TwoStepSettings, device: torch.device) -> int:
    """Processes for the per-angle ptychography: 1 on CUDA, else ``workers`` or torch's thread count."""
    if device.type != "cpu":
        return 1
    return settings.workers or torch.get_num_threads()


def phase_projections(scan: ScanData, settings: TwoStepSettings, cache_path: str | Path | None = None
                      ) -> np.ndarray:
    """Per-angle ptychography + unwrapping + offset/ramp removal → ``(n_angles, Y, width)`` radians.

    On the CPU, angles are solved by ``n_workers`` processes of one torch thread each (small
    FFTs scale better over angles than over threads, and they do not stall on a busy machine).
    """
    h, w = scan.intensities.shape[-2:]
    grid = beam_grid(scan.volume_shape, scan.voxel_size_m, (h, w), settings.n_slices).covering(scan.positions_m, (h, w))
    Y = scan.volume_shape[1]
    device = pick_device(settings.device)
    key = _settings_hash(scan, settings)
    out = np.zeros((scan.n_angles, Y, grid.width), np.float32)
    cache = None
    if cache_path is not None:
        try:
            cache = h5py.File(cache_path, "a")
        except OSError:  # a corrupt cache (a run killed mid-write): start afresh
            Path(cache_path).unlink(missing_ok=True)
            cache = h5py.File(cache_path, "w")
        if cache.attrs.get("key") != key:
            for name in list(cache):
                del cache[name]
            cache.attrs["key"] = key
    todo = [i for i in range(scan.n_angles) if cache is None or f"angle_{i:05d}" not in cache]
    for i in set(range(scan.n_angles)) - set(todo):
        out[i] = cache[f"angle_{i:05d}"][()]

    def args(i):
        return (scan.intensities[i], scan.probe, grid.top_left(scan.positions_m[i], (h, w)), grid,
                scan.wavelength_m, settings, i, device, Y)

    nw = min(n_workers(settings, device), len(todo))
    pool = None
    try:
        if nw <= 1:
            results = ((i, _angle_projection(*args(i))) for i in todo)
        else:
            pool = ProcessPoolExecutor(nw, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=torch.set_num_threads, initargs=(1,))
            results = _bounded_map(pool, todo, args, 2 * nw)
        for i, proj in progress(results, desc="ptychography", total=len(todo), unit="angle"):
            out[i] = proj
            if cache is not None:
                cache[f"angle_{i:05d}"] = proj
                cache.flush()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if cache is not None:
            cache.close()
    return out


def _bounded_map(pool: ProcessPoolExecutor, items, args, window: int):
    """Yield ``(i, result)`` as workers finish, with at most ``window`` angles in flight (memory)."""
    items = iter(items)
    pending = {pool.submit(_in_worker, i, *args(i)) for i in itertools.islice(items, window)}
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            yield f.result()
            nxt = next(items, None)
            if nxt is not None:
                pending.add(pool.submit(_in_worker, nxt, *args(nxt)))


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

"""The conventional two-step reconstruction: per-angle ptychography → phase projections → FBP/SART.

With the nominal scan it makes the golden standard; with the reduced scan the FBP and SART
baselines. The scan's probe is only an initial guess: :func:`retrieve_probe` first refines the
probe jointly with the objects of a few angles spread over the range (one shared probe: it is the
same at every angle of an experiment), then every angle is solved with that probe fixed, so all
projections share one probe (and one position reference). Per-angle projections and the retrieved
probe are cached in an HDF5 side file keyed by the settings, so a crashed run resumes at the first
missing angle; :func:`write_probe` saves the retrieved probe for later stages (the approximant).
With ``align`` the projections are aligned before tomography (:mod:`rapidtomo.recon.alignment`:
a drifting sample, an off-centre rotation axis) and the shifts found are recorded
(:func:`alignment_record`), for the report and for the approximant of the same scan.
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

from ..cluster import Cluster
from ..config import Settings
from ..device import pick_device
from ..io import ScanData, Volume
from ..io.atomic import atomic_path
from ..physics.geometry import beam_grid
from ..progress import progress
from .alignment import Alignment, align_projections
from .projections import empty_mask, remove_offset_and_ramp, unwrap_if_wrapped
from .ptychography import illumination, reconstruct_angle, reconstruct_angles
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
    refine_probe: bool = Field(True, description="retrieve the probe (all modes) from the data, starting from the "
                               "scan's probe as a guess; false: take the scan's probe as exact")
    probe_angles: int = Field(3, ge=1, description="angles (nearest to evenly spread targets within ±45°) whose "
                              "objects are solved jointly with the shared probe before all angles are solved "
                              "with that probe fixed")
    probe_epochs: int = Field(20, ge=1, description="epochs of the joint probe-and-object solution")
    probe_lr: float = Field(0.02, gt=0, description="probe Adam step as a fraction of the initial probe's peak "
                            "amplitude")
    probe_defocus_lr: float = Field(0.5, gt=0, description="Adam step of the probe's defocus correction as a "
                                    "fraction of the depth of field 2·dx²/λ")
    probe_start_epoch: int = Field(2, ge=0, description="epochs of object-only updates before the probe moves")
    refine_positions: bool = Field(False, description="refine each angle's scan positions (per-position "
                                   "least-squares shifts, applied as Fourier sub-pixel shifts of the probe; mean "
                                   "shift kept 0)")
    position_step: float = Field(1.0, gt=0, le=1, description="position refinement: the fraction of each "
                                 "position's least-squares shift applied per update")
    position_start_epoch: int = Field(3, ge=0, description="epochs before the positions move")
    max_position_shift_px: float = Field(3.0, gt=0, description="largest position correction (pixels)")
    saturation_level: float | None = Field(None, gt=0, description="counts at or above this are left out of the "
                                           "loss (default: the scan file's saturation level, if any)")
    ramp: bool = Field(True, description="remove a linear phase ramp (else only the offset) fitted on empty pixels")
    align: bool = Field(False, description="align the projections before tomography (a drifting sample, an "
                        "off-centre rotation axis; needs air around the sample in the scanned field): phase ramps "
                        "removed, vertically by mass profiles, horizontally by iterative reprojection; reports "
                        "the shifts and the rotation centre found")
    align_iterations: int = Field(10, ge=1, description="align: the most reconstruct-reproject-register rounds "
                                  "(fewer once no projection moves by more than 0.05 pixel)")
    device: str = Field("auto", description="torch device for ptychography: auto, cpu, cuda")
    workers: int = Field(0, ge=0, description="without a dask cluster ([cluster] scheduler = 'off'): CPU processes "
                         "solving angles in parallel, one torch thread each (0: torch's thread count, i.e. the cores "
                         "or OMP_NUM_THREADS); 1 on CUDA")


def _settings_hash(scan: ScanData, s: TwoStepSettings) -> str:
    keep = {k: v for k, v in s.to_dict().items()
            if k not in ("method", "sweeps", "align", "align_iterations", "device", "workers")}
    I = scan.intensities  # a sample of every angle's pixels, read one angle at a time
    total = sum(float(I[i, :, ::7, ::7].sum(dtype=np.float64)) for i in range(scan.n_angles))
    blob = json.dumps({"rows": "slice grid", "ptycho": keep, "angles": scan.angles_deg.tolist(),
                       "shape": list(I.shape), "sum": total}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def detector_and_positions(settings: TwoStepSettings, detector: tuple, positions: bool = True) -> dict:
    """Keyword arguments of :func:`reconstruct_angles` for the scan's ``detector`` = (mask, saturation
    level) and, with ``positions``, the position refinement settings."""
    mask, level = detector
    kw = {"bad_pixels": mask, "saturation_level": settings.saturation_level or level}
    if positions:
        kw.update(refine_positions=settings.refine_positions, position_step=settings.position_step,
                  position_start_epoch=settings.position_start_epoch,
                  max_position_shift_px=settings.max_position_shift_px)
    return kw


def _angle_projection(intensities: np.ndarray, probe: np.ndarray, top_left: np.ndarray, grid, theta_rad: float,
                      wavelength_m: float, settings: TwoStepSettings, seed: int, device: str,
                      detector: tuple = (None, None)) -> np.ndarray:
    """One angle: ptychography, unwrapping, offset/ramp removal → ``(height, width)`` radians on the slice grid.
    ``device``: a name for :func:`~rapidtomo.device.pick_device`, resolved where this runs;
    ``detector``: the scan's (detector_mask, saturation_level)."""
    device = pick_device(device)
    phase, corners = reconstruct_angle(intensities, probe, top_left, grid, theta_rad, wavelength_m,
                                       epochs=settings.epochs, batch_size=settings.batch_size, lr_rad=settings.lr_rad,
                                       refine_attenuation=settings.refine_attenuation, seed=seed, device=device,
                                       **detector_and_positions(settings, detector))
    phase = unwrap_if_wrapped(phase)
    lit = illumination(corners, probe, grid.slice_shape)
    return remove_offset_and_ramp(phase, empty_mask(lit), settings.ramp) * (lit > 0.01 * lit.max())


def _in_worker(i: int, *args) -> tuple[int, np.ndarray]:
    return i, _angle_projection(*args)


def n_workers(settings: TwoStepSettings, device: torch.device) -> int:
    """Processes for the per-angle ptychography: 1 on CUDA, else ``workers`` or torch's thread count."""
    if device.type != "cpu":
        return 1
    return settings.workers or torch.get_num_threads()


def ptychography_grid(scan: ScanData, settings: TwoStepSettings):
    """The slice grid of the per-angle ptychography: the volume's beam grid, grown until every window
    fits (refined positions stay on it: a window at its edge does not move out)."""
    h, w = scan.intensities.shape[-2:]
    return beam_grid(scan.volume_shape, scan.voxel_size_m, (h, w), settings.n_slices).covering(scan.positions_m, (h, w))


def _open_cache(cache_path: str | Path | None, key: str) -> h5py.File | None:
    """The cache file, emptied unless it was written under ``key`` (None without a path)."""
    if cache_path is None:
        return None
    try:
        cache = h5py.File(cache_path, "a")
    except OSError:  # a corrupt cache (a run killed mid-write): start afresh
        Path(cache_path).unlink(missing_ok=True)
        cache = h5py.File(cache_path, "w")
    if cache.attrs.get("key") != key:
        for name in list(cache):
            del cache[name]
        cache.attrs["key"] = key
    return cache


def probe_angle_indices(angles_deg: np.ndarray, k: int) -> list[int]:
    """Indices of up to ``k`` distinct angles nearest to ``k`` targets evenly spread over [−45°, 45°]."""
    targets = np.linspace(-45, 45, k) if k > 1 else np.zeros(1)
    picks: list[int] = []
    for t in targets:
        free = [i for i in np.argsort(np.abs(np.asarray(angles_deg) - t), kind="stable") if i not in picks]
        if free:
            picks.append(int(free[0]))
    return sorted(picks)


def retrieve_probe(scan: ScanData, settings: TwoStepSettings, cache_path: str | Path | None = None,
                   key: str | None = None) -> np.ndarray:
    """The probe ``(M, h, w)`` refined from ``scan.probe`` (a guess) with the objects of a few angles.

    Joint blind ptychography (:func:`recon.ptychography.reconstruct_angles`) on the
    ``probe_angles`` angles of :func:`probe_angle_indices`, ``probe_epochs`` epochs, one shared
    probe. Cached as ``probe_retrieved`` in the cache file, under ``key`` (default: the hash of the
    scan and settings, which reads every angle once).
    """
    cache = None if cache_path is None else _open_cache(cache_path, key or _settings_hash(scan, settings))
    try:
        if cache is not None and "probe_retrieved" in cache:
            return cache["probe_retrieved"][()]
        h, w = scan.intensities.shape[-2:]
        grid = ptychography_grid(scan, settings)
        idx = probe_angle_indices(scan.angles_deg, settings.probe_angles)
        device = pick_device(settings.device)
        threads = torch.get_num_threads()
        if device.type == "cpu":  # one thread, as the angle workers: OpenMP threads stall on a busy machine
            torch.set_num_threads(1)
        try:
            probe = reconstruct_angles(
                scan.intensities[idx], scan.probe, grid.top_left(scan.positions_m[idx], (h, w)), grid,
                np.deg2rad(scan.angles_deg[idx]), scan.wavelength_m, epochs=settings.probe_epochs,
                batch_size=settings.batch_size, lr_rad=settings.lr_rad, refine_attenuation=settings.refine_attenuation,
                refine_probe=True, probe_lr=settings.probe_lr, defocus_lr=settings.probe_defocus_lr,
                probe_start_epoch=settings.probe_start_epoch, device=device,
                **detector_and_positions(settings, (scan.detector_mask, scan.saturation_level))).probe
        finally:
            torch.set_num_threads(threads)
        probe = probe.astype(np.complex64)
        if cache is not None:
            cache["probe_retrieved"] = probe
            cache.attrs["probe_angles_deg"] = scan.angles_deg[idx]
        return probe
    finally:
        if cache is not None:
            cache.close()


def write_probe(path: str | Path, probe: np.ndarray, scan: ScanData, attrs: dict | None = None) -> Path:
    """Write a retrieved probe as HDF5 ``/probe`` ``(M, h, w)`` complex64 with ``pixel_size_m``, ``energy_kev``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            d = f.create_dataset("probe", data=np.asarray(probe, np.complex64))
            d.attrs["pixel_size_m"] = scan.voxel_size_m[2]
            d.attrs["energy_kev"] = scan.energy_kev
            for k, v in (attrs or {}).items():
                d.attrs[k] = json.dumps(v, default=str) if isinstance(v, (dict, list)) else v
    return path


def read_probe(path: str | Path) -> np.ndarray:
    """The probe ``(M, h, w)`` written by :func:`write_probe`."""
    with h5py.File(path, "r") as f:
        return f["probe"][()]


def phase_projections(scan: ScanData, settings: TwoStepSettings, cache_path: str | Path | None = None,
                      probe: np.ndarray | None = None, key: str | None = None,
                      cluster: Cluster | None = None) -> np.ndarray:
    """Per-angle ptychography + unwrapping + offset/ramp removal → ``(n_angles, height, width)`` radians.

    The projections cover the whole slice grid (the volume's Y rows centred), so that a sample
    that drifted vertically is still in them; :func:`two_step` cuts them to Y rows. ``probe`` (default ``scan.probe``) is used as exact at every angle. On the CPU, angles are
    solved by ``n_workers`` processes of one torch thread each (small FFTs scale better over
    angles than over threads, and they do not stall on a busy machine); with an active
    ``cluster`` (:class:`rapidtomo.cluster.Cluster`) each angle is a dask task instead, whose
    device ``settings.device`` picks on its worker. Finished angles are cached either way.
    """
    h, w = scan.intensities.shape[-2:]
    probe = scan.probe if probe is None else probe
    grid = ptychography_grid(scan, settings)
    device = pick_device(settings.device)
    out = np.zeros((scan.n_angles,) + grid.slice_shape, np.float32)
    cache = None if cache_path is None else _open_cache(cache_path, key or _settings_hash(scan, settings))
    todo = [i for i in range(scan.n_angles) if cache is None or f"angle_{i:05d}" not in cache]
    for i in set(range(scan.n_angles)) - set(todo):
        out[i] = cache[f"angle_{i:05d}"][()]

    def args(i):
        return (scan.intensities[i], probe, grid.top_left(scan.positions_m[i], (h, w)), grid,
                float(np.deg2rad(scan.angles_deg[i])), scan.wavelength_m, settings, i, settings.device,
                (scan.detector_mask, scan.saturation_level))

    nw = min(n_workers(settings, device), len(todo))
    pool = None
    try:
        if cluster is not None and cluster.active:
            results = cluster.map(_angle_projection, todo, args, "ptychography")
        elif nw <= 1:
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


def alignment_record(alignment: Alignment, scan: ScanData) -> dict:
    """The shifts found, for the volume's attrs and the stage's sidecar (SI, docs/formats.md).

    ``angles_deg``, ``shift_m (n_angles, 2)`` (y, x': the sample's shift in each projection,
    drift plus axis offset), ``axis_offset_m`` (the rotation centre's offset from the scan's
    centre), ``pixel_m``, the reprojection ``iterations`` and ``last_step_m``; for a simulated
    scan that records its true shifts, ``error_rms_m`` ({y, x, rms}, up to a translation of the
    sample): a report only, nothing in the reconstruction uses the truth.
    """
    px = scan.voxel_size_m[2]
    rec = {"angles_deg": scan.angles_deg.tolist(), "shift_m": (alignment.shift_px * px).tolist(),
           "axis_offset_m": alignment.axis_offset_px * px, "pixel_m": px, "iterations": alignment.iterations,
           "last_step_m": alignment.last_step_px * px}
    if scan.sample_shift_m is not None:
        err = alignment.errors_px(scan.sample_shift_m / px, scan.angles_deg)
        rec["error_rms_m"] = {k: v * px for k, v in err.items()}
    return rec


def alignment_summary(record: dict) -> str:
    """One line (pixels) of an :func:`alignment_record`."""
    px = record["pixel_m"]
    s = np.asarray(record["shift_m"]) / px
    line = (f"aligned {len(s)} projections: rotation axis {record['axis_offset_m'] / px:+.2f} px off the scan's "
            f"centre, drift up to {np.abs(s[:, 0]).max():.2f} px (y), "
            f"{np.abs(s[:, 1] - record['axis_offset_m'] / px).max():.2f} px (x'), {record['iterations']} "
            f"reprojection rounds")
    if "error_rms_m" in record:
        e = {k: v / px for k, v in record["error_rms_m"].items()}
        line += f"; vs the simulated shifts: rms error {e['rms']:.2f} px (y {e['y']:.2f}, x' {e['x']:.2f})"
    return line


def two_step(scan: ScanData, settings: TwoStepSettings | None = None, cache_path: str | Path | None = None,
             probe_path: str | Path | None = None, cluster: Cluster | None = None) -> Volume:
    """Golden standard (nominal scan, SART) or baseline (reduced scan, FBP/SART) as a Volume.

    The volume is phase per voxel on the scan's nominal grid ``volume_shape``/``voxel_size_m``,
    oriented like the simulated object. attrs hold the method, the seconds of each step and, with
    ``refine_probe``, the angles the probe was retrieved on; ``probe_path`` receives the probe
    used (:func:`write_probe`), which later stages (the approximant) should take instead of the
    scan's guess. With ``align``, the projections are aligned first
    (:func:`~rapidtomo.recon.alignment.align_projections`) and attrs ``alignment`` holds the
    shifts found (:func:`alignment_record`); else the projections are cut to the volume's rows
    as they are. ``cluster``: where the angles are solved (:func:`phase_projections`).
    """
    settings = settings or TwoStepSettings()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    key = _settings_hash(scan, settings) if cache_path is not None else None
    probe = retrieve_probe(scan, settings, cache_path, key) if settings.refine_probe else scan.probe
    tp = time.perf_counter()
    P = phase_projections(scan, settings, cache_path, probe, key, cluster)
    t1 = time.perf_counter()
    record = None
    if settings.align:
        grid = ptychography_grid(scan, settings)
        h, w = scan.intensities.shape[-2:]
        lit = np.stack([illumination(grid.top_left(pos, (h, w)), probe, grid.slice_shape).astype(np.float32)
                        for pos in scan.positions_m])
        P, alignment = align_projections(P, scan.angles_deg, scan.volume_shape, scan.voxel_size_m, grid, lit,
                                         iterations=settings.align_iterations)
        record = alignment_record(alignment, scan)
    else:
        top = (P.shape[1] - scan.volume_shape[1]) // 2
        P = P[:, top:top + scan.volume_shape[1]]
    ta = time.perf_counter()
    vol = tomography(P, scan, settings)
    t2 = time.perf_counter()
    attrs = {"quantity": "phase_rad_per_voxel", "stage": "two_step", "method": settings.method,
             "n_angles": int(scan.n_angles), "seconds_ptychography": t1 - t0, "seconds_probe": tp - t0,
             "seconds_alignment": ta - t1, "seconds_tomography": t2 - ta, "settings": settings.to_dict()}
    if settings.refine_probe:
        attrs["probe_angles_deg"] = scan.angles_deg[probe_angle_indices(scan.angles_deg, settings.probe_angles)].tolist()
    if probe_path is not None:
        write_probe(probe_path, probe, scan, {"refined": settings.refine_probe,
                                              "probe_angles_deg": attrs.get("probe_angles_deg", [])})
    if record is not None:
        attrs["alignment"] = record
    return Volume(vol, scan.voxel_size_m, attrs)

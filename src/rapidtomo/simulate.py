"""Simulating a ptycho-tomographic experiment: phantom → nominal and reduced-angle scans.

``simulate(settings)`` builds (or takes) a phase volume, a partially coherent zone-plate probe (M
coherent modes of a Gaussian Schell-model source), a snake scan, and computes diffraction
patterns for the nominal (many-angle) and the reduced acquisition, then Poisson noise at a mean
photon count per pattern.

No inverse crime: by default (``model = "fine"``) the patterns come from the reference model of
:mod:`rapidtomo.physics.reference` (cubic-spline object on a 2x finer grid, converged slabs, 2x
wider far field cut to the detector), not from the reconstruction operator; ``model = "fast"``
uses the reconstruction operator H_θ itself (L slabs, bilinear rotation) and is only for quick
checks. The scan file's ``/entry/probe`` is an initial *guess* (the zone-plate model with a wrong
defocus and the right total power), as a user would provide for real data; the true probe is kept
as ``ScanData.true_probe`` (``/entry/simulation/true_probe``). Likewise the positions: with
``position_error_px`` / ``position_drift_px`` the probe really is at the nominal positions plus
errors (:func:`rapidtomo.physics.scanning.position_errors`, sub-pixel, applied by the models' Fourier
shift of the probe), those true positions go to ``/entry/simulation/true_positions_m`` and
``/entry/data/positions_m`` holds the nominal ones, as a stage's readings would. Optionally the
sample drifts (a random shift across the beam per angle) and the rotation axis is off the scan's
centre: the sample moves (the fine model evaluates its spline at the shifted points), the true
shifts are kept as ``/entry/simulation/sample_shift_m``. ``/entry`` attribute ``simulation``
records how the data were made.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from .cluster import Cluster
from .config import Settings
from .device import pick_device
from .io import Patterns, ScanData, ScanWriter, Volume
from .physics.geometry import (BeamGrid, angle_set_deg, beam_grid, detector_distance_for_pixel,
                               object_pixel_size_m, split_sample_shifts, wavelength_m)
from .physics.noise import poisson_noise
from .physics.operator import PtychoTomoOperator
from .physics import reference
from .physics.probe import gaussian_schell_modes, probe_modes, spot_diameter_m, zone_plate_probe
from .physics.scanning import position_errors, scan_positions
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
    coherence_length_m: float | None = Field(
        None, gt=0, description="transverse coherence length ξ of the Gaussian Schell-model illumination at "
        "the sample (m); default: the probe's spot diameter (mode powers 0.84, 0.065, 0.065, ... at the default "
        "geometry)")
    probe_guess_defocus_error: float = Field(
        0.3, gt=-1, description="the probe written as /entry/probe is the zone-plate model with its defocus "
        "scaled by 1 + this (an initial guess for the reconstruction; the true probe is kept apart)")
    model: Literal["fine", "fast"] = Field(
        "fine", description="fine: the reference model (2x finer cubic-spline object, converged slabs, wider far "
        "field; no inverse crime); fast: the reconstruction operator with n_slabs slabs (quick checks only)")
    slab_tolerance: float = Field(1e-3, gt=0, description="fine model: slabs are halved until halving them "
                                  "changes the sample's part of the patterns by less than this (relative)")
    scan_step_px: int = Field(6, ge=1, description="largest scan step between neighbouring windows (pixels)")
    scan_step_y_px: int | None = Field(None, ge=1, description="largest step between rows of windows (pixels), "
                                       "for an anisotropic scan (the paper: 500 nm in y, 100 nm in x); default: "
                                       "scan_step_px")
    scan_pattern: Literal["snake", "raster"] = Field("snake", description="scan pattern")
    position_error_px: float = Field(0.0, ge=0, description="random error of the true probe positions from the "
                                     "nominal (written) ones, rms per axis (pixels)")
    position_drift_px: float = Field(0.0, ge=0, description="slowly drifting position error along each angle's "
                                     "scan (a random walk), rms per axis (pixels)")
    n_slabs: int = Field(5, ge=1, description="fast model only: slabs L of the multislice model")
    n_nominal: int = Field(120, ge=1, description="angles of the nominal (golden-standard) acquisition")
    n_reduced: int = Field(21, ge=1, description="angles of the reduced acquisition")
    theta_max_deg: float = Field(140.8, gt=0, le=180, description="angular range θmax of the reduced scan: "
                                 "angles in [-θmax/2, θmax/2]")
    theta_max_nominal_deg: float | None = Field(
        None, gt=0, le=180, description="angular range of the nominal scan (default: theta_max_deg, as in the "
        "paper); 180 removes the missing wedge from the golden standard")
    drift_px: float = Field(0.0, ge=0, description="the sample drifts: a random shift across the beam (y and x') "
                            "at every angle, seeded, the largest this many pixels per axis; 0: no drift")
    axis_offset_px: float = Field(0.0, description="the rotation axis this many pixels (x') off the scan's centre")
    field_margin_px: int = Field(0, ge=0, description="scan at least this many pixels (rounded up to even) beyond "
                                 "the sample's widest shadow on every side; the scan always leaves room for "
                                 "drift_px (y) and drift_px + |axis_offset_px| (x')")
    photons: float = Field(1e6, ge=0, description="mean photons per pattern; 0 means noiseless")
    seed: int = Field(0, description="seed of the phantom layout and the noise")
    compress_patterns: bool = Field(True, description="gzip the scan files' patterns (level 1, shuffled; "
                                    "lossless); off: raw float32, faster to write and read, larger on disk")
    device: str = Field("auto", description="torch device: auto, cpu, cuda")

    @property
    def scan_steps_px(self) -> tuple[int, int]:
        """The largest scan steps ``(y, x)`` in pixels."""
        return (self.scan_step_y_px or self.scan_step_px, self.scan_step_px)

    @model_validator(mode="after")
    def _check(self):
        if self.model == "fast" and (self.drift_px or self.axis_offset_px):
            raise ValueError("drift_px and axis_offset_px need model = 'fine' (the fast model, the reconstruction "
                             "operator, has no sample shift)")
        if self.detector_size % 4:
            raise ValueError("detector_size must be a multiple of 4 (the approximant halves it)")
        if self.detector_distance_m is not None:
            pixel = object_pixel_size_m(self.energy_kev, self.detector_distance_m, self.detector_pixel_m,
                                        self.detector_size)
            if abs(pixel - self.voxel_size_m) > 1e-6 * pixel:
                raise ValueError(f"detector_distance_m = {self.detector_distance_m:g} m gives an object pixel "
                                 f"λ·z/(n·p) = {pixel:.7g} m, but voxel_size_m = {self.voxel_size_m:.7g} m; set "
                                 f"voxel_size_m = {pixel:.7g} or leave detector_distance_m unset")
        return self

    @property
    def distance_m(self) -> float:
        return self.detector_distance_m or detector_distance_for_pixel(
            self.energy_kev, self.voxel_size_m, self.detector_pixel_m, self.detector_size)


class FineModel:
    """The reference model of one volume, built once and applied per angle (see :mod:`physics.reference`)."""

    def __init__(self, volume: Volume, settings: SimulateSettings, probe: np.ndarray):
        self.grid = physics_grid(volume, settings, 1)
        self.phase = reference.spline_volume(volume.data)
        self.attenuation = (None if volume.attenuation is None
                            else reference.spline_volume(volume.attenuation))
        self.probe = reference.upsample_probe(probe)
        self.wavelength_m = wavelength_m(settings.energy_kev)
        self.samples_per_slab = 1
        self.slab_change = float("nan")

    def converge_slabs(self, angles_deg: np.ndarray, top_left: np.ndarray, tolerance: float) -> None:
        """Choose the slab thickness on the angles nearest 0°, 45° and the most oblique, 16 central positions."""
        a = np.abs(np.asarray(angles_deg))
        picks = sorted({int(np.argmin(a)), int(np.argmin(np.abs(a - 45))), int(np.argmax(a))})
        centre = (np.asarray(self.grid.slice_shape) - self.probe.shape[-1] // reference.OVERSAMPLING) / 2
        central = top_left[np.argsort(((top_left - centre) ** 2).sum(1), kind="stable")[:16]]
        self.samples_per_slab, self.slab_change = reference.converged_slab_samples(
            self.phase, self.attenuation, np.deg2rad(np.asarray(angles_deg)[picks]), self.grid, self.probe,
            central, self.wavelength_m, tolerance)

    def intensities(self, theta_rad: float, top_left: np.ndarray, shift_px=(0.0, 0.0)) -> np.ndarray:
        """Noiseless detector intensities ``(N, n, n)`` at one angle, the sample shifted by ``shift_px (y, x')``."""
        return reference.angle_intensities(self.phase, self.attenuation, theta_rad, self.grid, self.probe,
                                           top_left, self.wavelength_m, self.samples_per_slab, shift_px=shift_px)

    def record(self) -> dict:
        """How the data were simulated (the scan file's ``simulation`` attribute)."""
        step = reference.beam_step_m(self.grid)
        return {"model": "fine", "oversampling": reference.OVERSAMPLING,
                "object": "cubic B-spline interpolant of the phantom (scipy spline_filter), zero outside",
                "rotation": "cubic B-spline evaluation on the rotated fine grid (not the reconstruction's bilinear)",
                "beam_step_m": step, "slab_thickness_m": step * self.samples_per_slab,
                "slab_criterion": "halving the slabs changes I - I_air by < slab_tolerance at the angles nearest "
                                  "0, 45 deg and the most oblique",
                "slab_change": self.slab_change,
                "slabs_span": "the sample's extent along the beam at each angle",
                "far_field": f"{reference.OVERSAMPLING}x wider window, central detector_size cut",
                "probe_plane": "the rotation axis (b = 0), propagated to the first slab",
                "engine": forward_engine()}


def forward_engine() -> str:
    """The multislice engine that computes the patterns on this machine (FFTW on the CPU if installed)."""
    from .physics import fftw_backend
    return "fftw" if fftw_backend.available() else "torch"


def make_scan(volume: Volume, angles_deg: np.ndarray, settings: SimulateSettings, probe: np.ndarray,
              rng: np.random.Generator, desc: str, guess: np.ndarray | None = None,
              fine: FineModel | None = None, shifts_px: np.ndarray | None = None,
              out: str | Path | None = None, attrs: dict | None = None, cluster: Cluster | None = None) -> ScanData:
    """Simulate one acquisition of ``volume`` at ``angles_deg``, one angle at a time.

    ``probe`` is the true probe ``(M, n, n)``; the scan's ``probe`` is ``guess`` (default
    :func:`make_probe_guess`). ``fine`` reuses a built :class:`FineModel` (its slabs already
    chosen); the fine model is built here otherwise. ``shifts_px (n_angles, 2)``: the sample's
    shift (y, x') at each angle (:func:`sample_shifts_px`; fine model only), kept as the scan's
    ``sample_shift_m``; the positions written are the nominal ones. ``rng`` draws the position
    errors and one seed from which each angle's Poisson noise gets its own generator, so an
    angle's noise does not depend on which angles were simulated before it.

    ``out``: the scan file, written angle by angle (:class:`~rapidtomo.io.ScanWriter`, resumable:
    a rerun of the same simulation skips the angles already in the partial file) and returned
    with lazy patterns (:class:`~rapidtomo.io.Patterns`); else the patterns are held in memory.
    ``attrs`` are added to the scan's attributes. With an active ``cluster``
    (:class:`rapidtomo.cluster.Cluster`) each angle is a dask task (the model sent once to every
    worker) and this process writes the patterns as they come.
    """
    n = settings.detector_size
    if shifts_px is not None and settings.model == "fast":
        raise ValueError("sample shifts need the fine model")
    grid = scan_grid(volume, settings, settings.n_slabs)
    top_left = scan_positions(grid.slice_shape, (n, n), settings.scan_steps_px, pattern=settings.scan_pattern)
    nominal_m = grid.positions_m(top_left, (n, n))
    physics = fine.grid if fine is not None and settings.model == "fine" else physics_grid(volume, settings,
                                                                                           settings.n_slabs)
    nominal_tl = physics.top_left(nominal_m, (n, n))
    true_tl = true_corners(nominal_tl, len(angles_deg), physics.slice_shape, n, settings, rng)
    noise_seed = int(rng.integers(2**63))
    if settings.model == "fast":
        op = PtychoTomoOperator(physics, probe, wavelength_m(settings.energy_kev), device=pick_device(settings.device))
        record = {"model": "fast", "n_slabs": settings.n_slabs, "oversampling": 1,
                  "rotation": "bilinear (the reconstruction operator's)", "engine": "operator"}
    else:
        if fine is None:
            fine = FineModel(volume, settings, probe)
            fine.converge_slabs(angles_deg, nominal_tl, settings.slab_tolerance)
        record = fine.record()
        if shifts_px is not None:
            record["sample_shifts"] = (f"drift up to {settings.drift_px:g} px in y and x' (uniform, seeded, no "
                                       f"rigid part), rotation axis at x' = {settings.axis_offset_px:g} px; "
                                       f"/entry/simulation/sample_shift_m")

    def angle(i: int) -> np.ndarray:
        """Angle i's patterns (N, n, n), with its own noise."""
        tl = true_tl[i] if true_tl.ndim == 3 else true_tl
        theta = float(np.deg2rad(angles_deg[i]))
        if settings.model == "fast":
            I = op.scan_intensities(volume.data, [theta], tl, attenuation=volume.attenuation)[0]
        else:
            I = fine.intensities(theta, tl, (0.0, 0.0) if shifts_px is None else tuple(shifts_px[i]))
        return poisson_noise(I, np.random.default_rng([noise_seed, i])) if settings.photons > 0 else I

    if true_tl.ndim == 3:
        err = true_tl - nominal_tl[None]
        record["positions"] = (f"true = nominal + errors: random {settings.position_error_px:g} px rms, drift "
                               f"{settings.position_drift_px:g} px rms per axis; measured rms "
                               f"{float(np.sqrt(np.mean(err ** 2))):.3f} px (clipped to the slice grid)")
    if settings.photons > 0:
        record["noise"] = "Poisson, each angle from its own generator (seeded by the scan's seed and the angle)"
    if guess is None:
        guess = make_probe_guess(settings, volume.voxel_size_m[2], probe)
    record["probe"] = (f"true: {probe.shape[0]} Gaussian Schell-model modes, coherence length "
                       f"{coherence_length(settings, volume.voxel_size_m[2]):.3g} m; /entry/probe: zone-plate "
                       f"guess, defocus x{1 + settings.probe_guess_defocus_error:g}")
    shape = (len(angles_deg), len(top_left), n, n)
    scan = ScanData(np.zeros(shape, np.float32) if out is None else Patterns(out, shape=shape), nominal_m,
                    angles_deg, guess.astype(np.complex64), settings.energy_kev, settings.distance_m,
                    settings.detector_pixel_m, volume.shape, volume.voxel_size_m,
                    {"simulated": True, "simulation": record, "settings": settings.to_dict(), **(attrs or {})},
                    true_probe=probe.astype(np.complex64),
                    true_positions_m=None if true_tl.ndim == 2 else physics.positions_m(true_tl, (n, n)),
                    sample_shift_m=None if shifts_px is None else shifts_px * volume.voxel_size_m[2])
    def made(todo: list[int]):
        """``(i, patterns)`` of the angles ``todo``, with progress, here or as dask tasks."""
        if cluster is not None and cluster.active and todo:
            model = cluster.client().scatter(angle, broadcast=True, hash=False)
            results = cluster.map(_apply, todo, lambda i: (model, i), desc.replace(" ", "-"))
        else:
            results = ((i, angle(i)) for i in todo)
        return progress(results, desc=desc, total=len(todo), unit="angle")

    if out is None:
        for i, patterns in made(list(range(len(angles_deg)))):
            scan.intensities[i] = patterns
        return scan
    key = _scan_key(volume, angles_deg, settings, noise_seed, true_tl)
    with ScanWriter(out, scan, key=key, compress=settings.compress_patterns) as w:
        for i, patterns in made(list(w.todo())):
            w.write_angle(i, patterns)
        w.finish()
    return scan


def _apply(fn, *args):
    return fn(*args)


def _scan_key(volume: Volume, angles_deg: np.ndarray, settings: SimulateSettings, noise_seed: int,
              true_tl: np.ndarray) -> str:
    """What makes a scan's patterns (settings, sample, angles, noise seed, positions) as a hash: a
    partial scan file written under another key is not resumed."""
    h = hashlib.sha256(json.dumps({"settings": settings.to_dict(), "noise_seed": noise_seed}, sort_keys=True,
                                  default=str).encode())
    for a in (volume.data, volume.attenuation, angles_deg, true_tl):
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def scan_grid(volume: Volume, settings: SimulateSettings, n_slabs: int) -> BeamGrid:
    """The slice grid the probe scans: the volume's beam grid, widened by the largest sample shift.

    A margin of the drift (y) and the drift plus the axis offset (x'), at least ``field_margin_px``,
    rounded up to even pixels on each side, so the shifted sample stays inside the scanned field
    (with air around it) as in an experiment planned for it; positions keep mapping onto the
    approximant's 2x coarser grid.
    """
    n = settings.detector_size
    grid = beam_grid(volume.shape, volume.voxel_size_m, (n, n), n_slabs, multiple=4)
    my = 2 * math.ceil(max(settings.drift_px, settings.field_margin_px) / 2)
    mx = 2 * math.ceil(max(settings.drift_px + abs(settings.axis_offset_px), settings.field_margin_px) / 2)
    return dataclasses.replace(grid, height=grid.height + 2 * my, width=grid.width + 2 * mx)


def sample_shifts_px(angles_deg: np.ndarray, drift_px: float, axis_offset_px: float,
                     rng: np.random.Generator) -> np.ndarray:
    """The sample's shift ``(n_angles, 2)`` (y, x') across the beam at each angle (pixels).

    A uniform random drift per angle and axis with its rigid part removed (the mean y, and the
    parts 1, cosθ, sinθ of x': :func:`~rapidtomo.physics.geometry.split_sample_shifts`; that part
    would be the sample sitting elsewhere, or the axis offset), scaled so the largest is
    ``drift_px`` per axis; plus ``axis_offset_px`` in x' at every angle.
    """
    drift = split_sample_shifts(rng.uniform(-1, 1, (len(angles_deg), 2)), angles_deg).drift
    peak = np.abs(drift).max(0)
    drift *= np.divide(drift_px, peak, out=np.zeros(2), where=peak > 1e-12)
    drift[:, 1] += axis_offset_px
    return drift


def position_margin_px(settings: SimulateSettings) -> int:
    """Pixels added around the simulator's slice grid for probes that errors move off the nominal
    scan: 4x the errors' rms (0 without errors; larger errors are clipped to the grid)."""
    return math.ceil(4 * (settings.position_error_px + settings.position_drift_px))


def physics_grid(volume: Volume, settings: SimulateSettings, n_slabs: int) -> BeamGrid:
    """The slice grid the simulator computes on: the scanned grid (:func:`scan_grid`), grown by
    :func:`position_margin_px` on every side (the same centre, so positions in metres agree)."""
    grid = scan_grid(volume, settings, n_slabs)
    m = position_margin_px(settings)
    return dataclasses.replace(grid, height=grid.height + 2 * m, width=grid.width + 2 * m)


def true_corners(nominal: np.ndarray, n_angles: int, shape: tuple[int, int], n: int, settings: SimulateSettings,
                 rng: np.random.Generator) -> np.ndarray:
    """Where the probe really is: ``nominal (N, 2)`` itself without position errors, else
    ``(n_angles, N, 2)`` float corners with errors, clipped so that windows ``n x n`` stay on the grid."""
    if not (settings.position_error_px or settings.position_drift_px):
        return nominal
    err = position_errors((n_angles, len(nominal)), settings.position_error_px, settings.position_drift_px, rng)
    tl = nominal[None] + err
    tl[..., 0] = np.clip(tl[..., 0], 0, shape[0] - n)
    tl[..., 1] = np.clip(tl[..., 1], 0, shape[1] - n)
    return tl


def coherence_length(settings: SimulateSettings, pixel_m: float) -> float:
    """ξ of the illumination (m): the setting, or the probe's spot diameter."""
    return settings.coherence_length_m or spot_diameter_m(settings.detector_size, pixel_m, settings.spot_fraction)


def _photon_scale(settings: SimulateSettings, transmitted_fraction: float = 1.0) -> float:
    # unnormalised FFT: Σ|F ψ|² = n² Σ|ψ|², so scale Σ|P|² = 1 to photons / n²
    n = settings.detector_size
    return np.sqrt((settings.photons or 1e6) / (n * n * transmitted_fraction))


def make_probe(settings: SimulateSettings, pixel_m: float, transmitted_fraction: float = 1.0) -> np.ndarray:
    """The true probe: ``(M, n, n)`` Gaussian Schell-model modes of the zone-plate probe, at the plane b = 0.

    Scaled so a pattern holds ``photons`` (1e6 if noiseless) on average.
    """
    n = settings.detector_size
    coherent = zone_plate_probe(n, pixel_m, settings.energy_kev, spot_fraction=settings.spot_fraction)
    modes = gaussian_schell_modes(coherent, settings.n_modes, coherence_length(settings, pixel_m), pixel_m)
    return modes * _photon_scale(settings, transmitted_fraction)


def make_probe_guess(settings: SimulateSettings, pixel_m: float, true_probe: np.ndarray) -> np.ndarray:
    """The initial guess written as ``/entry/probe``: ``(M, n, n)``, the same total power as ``true_probe``.

    The zone-plate model with its defocus scaled by ``1 + probe_guess_defocus_error`` and M
    polynomial modes (:func:`probe_modes`, as a reconstruction initialises them) whose powers
    fall by 10x per mode (a user who does not know the coherence starts near a coherent probe).
    """
    n = settings.detector_size
    wrong = zone_plate_probe(n, pixel_m, settings.energy_kev, spot_fraction=settings.spot_fraction,
                             defocus_error=settings.probe_guess_defocus_error)
    return probe_modes(wrong, settings.n_modes, decay=0.1) * np.sqrt(np.sum(np.abs(true_probe) ** 2))


def default_phantom(settings: SimulateSettings) -> Volume:
    from .phantom import synthetic_ic
    d = settings.voxel_size_m
    return synthetic_ic(tuple(settings.shape), (d, d, d), energy_kev=settings.energy_kev, seed=settings.seed)


def simulate(settings: SimulateSettings, phantom: Volume | None = None, out: tuple | None = None,
             attrs: dict | None = None, cluster: Cluster | None = None) -> tuple[Volume, ScanData, ScanData]:
    """Phantom (given or synthetic IC), nominal scan and reduced scan of the same sample.

    ``out``: the (nominal, reduced) scan files, written angle by angle and resumable
    (:func:`make_scan`); the scans returned then read their patterns from them. ``attrs`` are
    added to both scans' attributes (e.g. provenance). ``cluster``: where the angles are
    simulated (:func:`make_scan`)."""
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
    guess = make_probe_guess(settings, dx, probe)
    rng = np.random.default_rng(settings.seed + 1)
    nominal_angles = angle_set_deg(settings.n_nominal, settings.theta_max_nominal_deg or settings.theta_max_deg)
    reduced_angles = angle_set_deg(settings.n_reduced, settings.theta_max_deg)
    fine = None
    if settings.model == "fine":
        n = settings.detector_size
        fine = FineModel(phantom, settings, probe)
        top_left = scan_positions(fine.grid.slice_shape, (n, n), settings.scan_steps_px, pattern=settings.scan_pattern)
        fine.converge_slabs(np.concatenate([nominal_angles, reduced_angles]), top_left, settings.slab_tolerance)
    shifts = [None, None]
    if settings.drift_px or settings.axis_offset_px:
        drift_rng = np.random.default_rng(settings.seed + 2)  # apart from the noise's: a drift leaves it as it was
        shifts = [sample_shifts_px(a, settings.drift_px, settings.axis_offset_px, drift_rng)
                  for a in (nominal_angles, reduced_angles)]
    origin = json.dumps({k: v for k, v in phantom.attrs.items() if k in ("phantom", "seed")})
    scans = [make_scan(phantom, angles, settings, probe, rng, f"{kind} scan", guess, fine, shift,
                       None if out is None else out[j], {**(attrs or {}), "acquisition": kind, "phantom": origin},
                       cluster)
             for j, (kind, angles, shift) in enumerate((("nominal", nominal_angles, shifts[0]),
                                                        ("reduced", reduced_angles, shifts[1])))]
    return phantom, scans[0], scans[1]

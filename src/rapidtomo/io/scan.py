"""Ptycho-tomographic scan data: diffraction patterns per angle, positions, probe, geometry.

HDF5 layout (CXI-like, docs/formats.md)::

    /entry/data/intensities      (n_angles, n_pos, h, w) float32, photons, DC at the centre
    /entry/data/positions_m      (n_angles, n_pos, 2) or (n_pos, 2): probe-centre (y, x) in metres,
                                 in the beam frame, relative to the rotation axis and mid-height
    /entry/data/angles_deg       (n_angles,)
    /entry/probe                 (M, h, w) complex64, probe modes on the object grid
    /entry/instrument/energy_kev, detector_distance_m, detector_pixel_m   (scalars)
    /entry/instrument/detector_mask    (h, w) uint8, optional: nonzero = bad pixel (CXI's convention),
                                 left out of every loss
    /entry/instrument/saturation_level scalar, optional: counts ≥ it are left out of every loss
    /entry/sample/volume_shape   (3,) int: (Z, Y, X) of the nominal object grid
    /entry/sample/voxel_size_m   (3,) (dz, dy, dx); dy = dx = the object pixel size
    /entry/simulation/true_probe (M, h, w) complex64, simulated data only: the probe that made the
                                 patterns (/entry/probe is then the reconstruction's initial guess)
    /entry/simulation/true_positions_m  like positions_m, simulated data only: where the probe really
                                 was (/entry/data/positions_m are then the nominal positions)
    /entry/simulation/sample_shift_m (n_angles, 2), simulated drifting data only: the sample's true
                                 shift (y, x') across the beam at each angle, drift plus axis offset
    /entry attributes: simulation (how the data were simulated, JSON), provenance
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import UserError
from ..physics.geometry import object_pixel_size_m, wavelength_m
from .atomic import atomic_path


@dataclass
class ScanData:
    """One ptycho-tomographic acquisition. Shapes as in the module docstring; SI units."""

    intensities: np.ndarray
    positions_m: np.ndarray
    angles_deg: np.ndarray
    probe: np.ndarray
    energy_kev: float
    detector_distance_m: float
    detector_pixel_m: float
    volume_shape: tuple[int, int, int]
    voxel_size_m: tuple[float, float, float]
    attrs: dict[str, Any] = field(default_factory=dict)
    true_probe: np.ndarray | None = None
    detector_mask: np.ndarray | None = None  # (h, w) bool, True = bad pixel
    saturation_level: float | None = None
    true_positions_m: np.ndarray | None = None  # (n_angles, n_pos, 2), simulation only
    sample_shift_m: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.intensities = np.asarray(self.intensities)
        self.angles_deg = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        self.probe = np.asarray(self.probe)
        if self.probe.ndim == 2:
            self.probe = self.probe[None]
        pos = np.asarray(self.positions_m, dtype=np.float64)
        if pos.ndim == 2:
            pos = np.broadcast_to(pos, (len(self.angles_deg),) + pos.shape).copy()
        self.positions_m = pos
        if self.detector_mask is not None:
            self.detector_mask = np.asarray(self.detector_mask) != 0
        if self.true_positions_m is not None:
            self.true_positions_m = np.asarray(self.true_positions_m, dtype=np.float64)
        self.volume_shape = tuple(int(v) for v in self.volume_shape)  # type: ignore[assignment]
        self.voxel_size_m = tuple(float(v) for v in self.voxel_size_m)  # type: ignore[assignment]
        if self.sample_shift_m is not None:
            self.sample_shift_m = np.asarray(self.sample_shift_m, dtype=np.float64)
        problem = validate_scan_arrays(self)
        if problem:
            raise ValueError(problem[1] + ": " + problem[2])

    @property
    def n_angles(self) -> int:
        return self.intensities.shape[0]

    @property
    def wavelength_m(self) -> float:
        return wavelength_m(self.energy_kev)

    @property
    def pixel_size_m(self) -> float:
        """Object-plane pixel λ·z/(n·p) of the detector geometry (equals the volume's dx)."""
        return object_pixel_size_m(self.energy_kev, self.detector_distance_m, self.detector_pixel_m,
                                   self.intensities.shape[-1])

    def subset(self, angle_indices) -> "ScanData":
        """A scan with only the given angles (e.g. every k-th for a reduced acquisition)."""
        idx = np.asarray(angle_indices)
        return ScanData(self.intensities[idx], self.positions_m[idx], self.angles_deg[idx], self.probe,
                        self.energy_kev, self.detector_distance_m, self.detector_pixel_m,
                        self.volume_shape, self.voxel_size_m, dict(self.attrs), self.true_probe,
                        self.detector_mask, self.saturation_level,
                        None if self.true_positions_m is None else self.true_positions_m[idx],
                        None if self.sample_shift_m is None else self.sample_shift_m[idx])


def validate_scan_arrays(s: ScanData) -> tuple[str, str, str] | None:
    """First problem found as (kind, field, message), or None. Checks shapes, NaN and signs."""
    I = s.intensities
    if I.ndim != 4:
        return ("shape", "/entry/data/intensities", f"must be (n_angles, n_pos, h, w), has shape {I.shape}")
    n_ang, n_pos, h, w = I.shape
    if len(s.angles_deg) != n_ang:
        return ("shape", "/entry/data/angles_deg",
                f"has {len(s.angles_deg)} angles but intensities have {n_ang}")
    if s.positions_m.shape != (n_ang, n_pos, 2):
        return ("shape", "/entry/data/positions_m",
                f"shape {s.positions_m.shape} does not match (n_angles, n_pos, 2) = {(n_ang, n_pos, 2)}")
    if s.probe.ndim != 3 or s.probe.shape[1:] != (h, w):
        return ("shape", "/entry/probe", f"shape {s.probe.shape} does not match (M, {h}, {w})")
    if not np.all(np.isfinite(I)):
        return ("value", "/entry/data/intensities", "contains NaN or infinite values")
    if np.any(I < 0):
        return ("value", "/entry/data/intensities", "contains negative values")
    if not np.all(np.isfinite(s.positions_m)):
        return ("value", "/entry/data/positions_m", "contains NaN or infinite values")
    if not np.all(np.isfinite(s.angles_deg)):
        return ("value", "/entry/data/angles_deg", "contains NaN or infinite values")
    if not np.all(np.isfinite(s.probe)):
        return ("value", "/entry/probe", "contains NaN or infinite values")
    if s.detector_mask is not None and s.detector_mask.shape != (h, w):
        return ("shape", "/entry/instrument/detector_mask", f"shape {s.detector_mask.shape} does not match the "
                f"patterns' ({h}, {w})")
    if s.saturation_level is not None and not (np.isfinite(s.saturation_level) and s.saturation_level > 0):
        return ("value", "/entry/instrument/saturation_level", f"must be positive, got {s.saturation_level}")
    if s.true_positions_m is not None and s.true_positions_m.shape != s.positions_m.shape:
        return ("shape", "/entry/simulation/true_positions_m", f"shape {s.true_positions_m.shape} does not match "
                f"positions_m {s.positions_m.shape}")
    if s.sample_shift_m is not None and (s.sample_shift_m.shape != (n_ang, 2)
                                         or not np.all(np.isfinite(s.sample_shift_m))):
        return ("value", "/entry/simulation/sample_shift_m",
                f"must be finite (n_angles, 2) = {(n_ang, 2)}, has shape {s.sample_shift_m.shape}")
    for name in ("energy_kev", "detector_distance_m", "detector_pixel_m"):
        v = getattr(s, name)
        if not (np.isfinite(v) and v > 0):
            return ("value", f"/entry/instrument/{name}", f"must be positive, got {v}")
    if len(s.volume_shape) != 3 or min(s.volume_shape) < 1:
        return ("value", "/entry/sample/volume_shape", f"must be three positive sizes, got {s.volume_shape}")
    if len(s.voxel_size_m) != 3 or min(s.voxel_size_m) <= 0:
        return ("value", "/entry/sample/voxel_size_m", f"must be three positive lengths, got {s.voxel_size_m}")
    return None


def write_scan(path: str | Path, scan: ScanData) -> Path:
    """Write ``scan`` to ``path`` (HDF5) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            e = f.create_group("entry")
            e.attrs["NX_class"] = "NXentry"
            for k, v in scan.attrs.items():
                e.attrs[k] = json.dumps(v, default=str) if isinstance(v, (dict, list)) else v
            d = e.create_group("data")
            d.create_dataset("intensities", data=scan.intensities.astype(np.float32),
                             chunks=(1, min(scan.intensities.shape[1], 64)) + scan.intensities.shape[2:],
                             compression="gzip", compression_opts=1, shuffle=True)
            d.create_dataset("positions_m", data=scan.positions_m)
            d.create_dataset("angles_deg", data=scan.angles_deg)
            e.create_dataset("probe", data=scan.probe.astype(np.complex64))
            if scan.true_probe is not None:
                e.require_group("simulation").create_dataset("true_probe", data=scan.true_probe.astype(np.complex64))
            if scan.true_positions_m is not None:
                e.require_group("simulation").create_dataset("true_positions_m", data=scan.true_positions_m)
            if scan.sample_shift_m is not None:
                e.require_group("simulation").create_dataset("sample_shift_m", data=scan.sample_shift_m)
            ins = e.create_group("instrument")
            if scan.detector_mask is not None:
                ins.create_dataset("detector_mask", data=scan.detector_mask.astype(np.uint8))
            if scan.saturation_level is not None:
                ins["saturation_level"] = float(scan.saturation_level)
            ins["energy_kev"] = float(scan.energy_kev)
            ins["detector_distance_m"] = float(scan.detector_distance_m)
            ins["detector_pixel_m"] = float(scan.detector_pixel_m)
            smp = e.create_group("sample")
            smp["volume_shape"] = np.asarray(scan.volume_shape, dtype=np.int64)
            smp["voxel_size_m"] = np.asarray(scan.voxel_size_m, dtype=np.float64)
    return path


_REQUIRED = ("/entry/data/intensities", "/entry/data/positions_m", "/entry/data/angles_deg", "/entry/probe",
             "/entry/instrument/energy_kev", "/entry/instrument/detector_distance_m",
             "/entry/instrument/detector_pixel_m", "/entry/sample/volume_shape", "/entry/sample/voxel_size_m")


def _optional(f, name: str):
    return f[name][()] if name in f else None


def read_scan(path: str | Path) -> ScanData:
    """Read and validate a scan file; any problem is a one-line UserError naming file and field."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise UserError(f"{path}: not a readable HDF5 file") from None
    try:
        with f:
            for name in _REQUIRED:
                if name not in f:
                    raise UserError(f"{path}: missing dataset {name}")
            attrs = {}
            for k, v in f["entry"].attrs.items():
                if k == "NX_class":
                    continue
                v = v.decode() if isinstance(v, bytes) else v
                if isinstance(v, str) and v[:1] in "[{":
                    try:
                        v = json.loads(v)
                    except json.JSONDecodeError:
                        pass
                attrs[k] = v.item() if isinstance(v, np.generic) else v
            scan = object.__new__(ScanData)
            scan.intensities = f["/entry/data/intensities"][()]
            pos = np.asarray(f["/entry/data/positions_m"][()], dtype=np.float64)
            scan.angles_deg = np.asarray(f["/entry/data/angles_deg"][()], dtype=np.float64).ravel()
            if pos.ndim == 2 and pos.shape[-1] == 2:
                pos = np.broadcast_to(pos, (len(scan.angles_deg),) + pos.shape).copy()
            scan.positions_m = pos
            scan.probe = f["/entry/probe"][()]
            if scan.probe.ndim == 2:
                scan.probe = scan.probe[None]
            scan.energy_kev = float(f["/entry/instrument/energy_kev"][()])
            scan.detector_distance_m = float(f["/entry/instrument/detector_distance_m"][()])
            scan.detector_pixel_m = float(f["/entry/instrument/detector_pixel_m"][()])
            scan.volume_shape = tuple(int(v) for v in np.ravel(f["/entry/sample/volume_shape"][()]))
            scan.voxel_size_m = tuple(float(v) for v in np.ravel(f["/entry/sample/voxel_size_m"][()]))
            scan.attrs = attrs
            scan.true_probe = f["/entry/simulation/true_probe"][()] if "/entry/simulation/true_probe" in f else None
            scan.true_positions_m = _optional(f, "/entry/simulation/true_positions_m")
            if scan.true_positions_m is not None:
                scan.true_positions_m = np.asarray(scan.true_positions_m, np.float64)
                if scan.true_positions_m.ndim == 2:
                    scan.true_positions_m = np.broadcast_to(scan.true_positions_m, pos.shape).copy()
            mask = _optional(f, "/entry/instrument/detector_mask")
            scan.detector_mask = None if mask is None else np.asarray(mask) != 0
            level = _optional(f, "/entry/instrument/saturation_level")
            scan.saturation_level = None if level is None else float(level)
            shift = _optional(f, "/entry/simulation/sample_shift_m")
            scan.sample_shift_m = None if shift is None else np.asarray(shift, np.float64)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise UserError(f"{path}: corrupt or unreadable scan file ({type(e).__name__}: {e})") from None
    problem = validate_scan_arrays(scan)
    if problem:
        raise UserError(f"{path}: {problem[1]} {problem[2]}")
    return scan

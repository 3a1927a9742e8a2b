"""Ptycho-tomographic scan data: diffraction patterns per angle, positions, probe, geometry.

HDF5 layout (CXI-like, docs/formats.md)::

    /entry/data/intensities      (n_angles, n_pos, h, w) float32, photons, DC at the centre; HDF5 chunks
                                 of one angle's positions (1, ≤64, h, w), so one angle reads alone
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

Streaming: :func:`open_scan` (``read_scan(path, lazy=True)``) gives a :class:`ScanData` whose
``intensities`` is a :class:`Patterns`, a lazy view of the file read one angle at a time, so a
scan larger than memory can be reconstructed. :class:`ScanWriter` writes a scan one angle at a
time to a partial file beside the target (``.NAME.partial``, the angles done recorded in it as
attribute ``angles_done`` of the intensities), renamed over the target when every angle is in:
atomic, and resumable by a rerun with the same ``key``.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import UserError
from ..physics.geometry import object_pixel_size_m, wavelength_m


INTENSITIES = "/entry/data/intensities"
# most positions per HDF5 chunk of the patterns (a chunk (1, 64, 128, 128) float32 is 4 MB); an angle's
# positions are split into equal chunks so the last is not mostly padding
CHUNK_POSITIONS = 64


class Patterns:
    """The diffraction patterns ``(n_angles, n_pos, h, w)`` float32 (photons) of a scan file, read
    one angle at a time.

    ``patterns[i]`` reads angle ``i`` as ``(n_pos, h, w)``, checked (finite, ≥ 0: else a one-line
    :class:`UserError` naming the file, the field and the angle); ``patterns[idx]`` with a slice or
    a list of angles stacks those angles (they are all in memory then); ``np.asarray(patterns)``
    reads the whole scan. ``reads`` counts the angles read. Pickled, it reopens the file in the
    receiving process. With ``shape`` given the file need not exist yet (a :class:`ScanWriter`'s
    target: the header of the scan it writes).
    """

    def __init__(self, path: str | Path, angles=None, shape: tuple[int, ...] | None = None):
        self.path = Path(path)
        if shape is None:
            with h5py.File(self.path, "r") as f:
                shape = f[INTENSITIES].shape
        self._file_shape = tuple(int(v) for v in shape)  # given: the file is still to be written (ScanWriter)
        self.angles = np.arange(self._file_shape[0]) if angles is None else np.asarray(angles, dtype=np.int64)
        self.reads = 0
        self._file: h5py.File | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.angles),) + self._file_shape[1:]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.angles)

    def __getstate__(self):
        return {**self.__dict__, "_file": None}

    def angle(self, i: int) -> np.ndarray:
        """Angle ``i`` (of this view) read from the file: ``(n_pos, h, w)`` float32, checked."""
        k = int(self.angles[i])
        a = self._read(k)
        self.reads += 1
        problem = pattern_values_problem(a)
        if problem:
            raise UserError(f"{self.path}: {INTENSITIES} {problem} (angle {k})")
        return a

    def _read(self, k: int) -> np.ndarray:
        """Angle ``k`` of the file as float32 (a subclass reads other sources: importers)."""
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        try:
            return np.asarray(self._file[INTENSITIES][k], dtype=np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise UserError(f"{self.path}: {INTENSITIES} angle {k} unreadable ({type(e).__name__}: {e})") from None

    def subset(self, angle_indices) -> "Patterns":
        """A view of the given angles (nothing read)."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__getstate__())
        view.angles = self.angles[np.asarray(angle_indices)]
        view.reads = 0
        return view

    def __getitem__(self, key):
        head, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(head, (int, np.integer)):
            return self.angle(range(len(self))[head])[rest]
        idx = np.arange(len(self))[head]
        parts = [self.angle(int(i))[rest] for i in idx]  # the rest of the key applied angle by angle
        return np.stack(parts) if parts else np.empty((0,) + self.shape[1:], np.float32)[(slice(None),) + rest]

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


@dataclass
class ScanData:
    """One ptycho-tomographic acquisition. Shapes as in the module docstring; SI units."""

    intensities: np.ndarray | Patterns  # Patterns: read one angle at a time from the file
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
        if not isinstance(self.intensities, Patterns):
            self.intensities = np.asarray(self.intensities)
        self.angles_deg = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        self.probe = np.ascontiguousarray(self.probe)  # one memory layout: per-angle ptychography depends on it
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
        I = self.intensities
        return ScanData(I.subset(idx) if isinstance(I, Patterns) else I[idx], self.positions_m[idx],
                        self.angles_deg[idx], self.probe,
                        self.energy_kev, self.detector_distance_m, self.detector_pixel_m,
                        self.volume_shape, self.voxel_size_m, dict(self.attrs), self.true_probe,
                        self.detector_mask, self.saturation_level,
                        None if self.true_positions_m is None else self.true_positions_m[idx],
                        None if self.sample_shift_m is None else self.sample_shift_m[idx])


def pattern_values_problem(intensities: np.ndarray) -> str | None:
    """What is wrong with the values of patterns (any shape), or None: NaN, infinite or negative counts."""
    if not np.all(np.isfinite(intensities)):
        return "contains NaN or infinite values"
    if np.any(intensities < 0):
        return "contains negative values"
    return None


def mean_photons(intensities: np.ndarray | Patterns) -> float:
    """Mean photons per pattern of ``(n_angles, n_pos, h, w)`` patterns, summed one angle at a time."""
    n_ang, n_pos = intensities.shape[:2]
    total = sum(float(np.sum(intensities[i], dtype=np.float64)) for i in range(n_ang))
    return total / max(n_ang * n_pos, 1)


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
    problem = None if isinstance(I, Patterns) else pattern_values_problem(I)  # Patterns: checked per angle read
    if problem:
        return ("value", INTENSITIES, problem)
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


def write_scan(path: str | Path, scan: ScanData, compress: bool = True) -> Path:
    """Write ``scan`` to ``path`` (HDF5) atomically, one angle at a time (:class:`ScanWriter`).

    ``compress``: gzip (level 1, shuffled) the patterns; else they are stored raw (faster to
    write and read, 4 bytes per pixel on disk)."""
    with ScanWriter(path, scan, compress=compress) as w:
        for i in w.todo():
            w.write_angle(i, scan.intensities[i])
        return w.finish()


class ScanWriter:
    """Writes the scan file ``path`` one angle at a time; atomic, and resumable with ``key``.

    ``header`` is the scan (positions, angles, probe, geometry, attrs) whose patterns are written;
    its ``intensities`` give only the shape ``(n_angles, n_pos, h, w)`` (a :class:`Patterns` of
    ``path`` with ``shape``, which reads the file once it is finished). The patterns go to a
    partial file beside ``path``; :meth:`finish` writes the header and renames it to ``path``, so
    ``path`` never holds a half-written scan. With ``key`` (e.g. a hash of the settings that made
    the data) the partial file is ``.NAME.partial`` and records the angles done (attribute
    ``angles_done`` of the intensities): a rerun with the same key and shape resumes at the
    angles not yet done (:meth:`todo`), a different key or an unreadable partial file (killed
    mid-write) starts afresh, and leaving the ``with`` block without :meth:`finish` keeps it.
    Without ``key``, a fresh temporary file is deleted then.

    Examples
    --------
    >>> with ScanWriter(path, header, key="settings hash") as w:     # doctest: +SKIP
    ...     for i in w.todo():
    ...         w.write_angle(i, patterns_of_angle(i))               # (n_pos, h, w)
    ...     w.finish()
    """

    def __init__(self, path: str | Path, header: ScanData, key: str | None = None, compress: bool = True):
        self.path = Path(path)
        self.header = header
        self.key = key
        self.shape = tuple(int(v) for v in header.intensities.shape)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if key is None:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            os.close(fd)
            self.partial = Path(tmp)
        else:
            self.partial = self.path.with_name(f".{self.path.name}.partial")
        self._file = self._open(compress)

    def _open(self, compress: bool) -> h5py.File:
        if self.key is not None and self.partial.exists():
            try:
                f = h5py.File(self.partial, "a")
                d = f.get(INTENSITIES)
                if (d is not None and d.attrs.get("writer_key") == self.key and d.shape == self.shape
                        and "angles_done" in d.attrs):
                    return f
                f.close()
            except OSError:  # killed mid-write: start afresh
                pass
        f = h5py.File(self.partial, "w")
        n_ang, n_pos, h, w = self.shape
        d = f.create_dataset(INTENSITIES, shape=self.shape, dtype=np.float32,
                             chunks=(1, -(-n_pos // -(-n_pos // CHUNK_POSITIONS)), h, w),
                             **({"compression": "gzip", "compression_opts": 1, "shuffle": True} if compress else {}))
        d.attrs["angles_done"] = np.zeros(n_ang, np.uint8)
        if self.key is not None:
            d.attrs["writer_key"] = self.key
        f.flush()
        return f

    def __enter__(self) -> "ScanWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.key is None:
            self.partial.unlink(missing_ok=True)  # not finished: no temporary left behind

    def done(self) -> np.ndarray:
        """``(n_angles,)`` bool: the angles written."""
        return np.asarray(self._file[INTENSITIES].attrs["angles_done"]) != 0

    def todo(self) -> list[int]:
        """The angles not yet written, in order."""
        return [int(i) for i in np.flatnonzero(~self.done())]

    def write_angle(self, i: int, patterns: np.ndarray) -> None:
        """Write angle ``i``'s patterns ``(n_pos, h, w)`` (photons) and record it done (flushed)."""
        d = self._file[INTENSITIES]
        patterns = np.asarray(patterns, dtype=np.float32)
        if patterns.shape != self.shape[1:]:
            raise ValueError(f"angle {i}: patterns of shape {patterns.shape}, the scan's are {self.shape[1:]}")
        d[i] = patterns
        self._file.flush()  # the data first: an angle is marked done only once it is on disk
        done = self.done()
        done[i] = True
        d.attrs["angles_done"] = done.astype(np.uint8)
        self._file.flush()

    def finish(self) -> Path:
        """Write the header, rename the file to ``path`` and return ``path``; every angle must be written."""
        missing = self.todo()
        if missing:
            raise ValueError(f"{self.path}: angles {missing[:5]} not written")
        problem = validate_scan_arrays(self.header)
        if problem:
            raise ValueError(f"{problem[1]}: {problem[2]}")
        f = self._file
        del f[INTENSITIES].attrs["angles_done"]
        if "writer_key" in f[INTENSITIES].attrs:
            del f[INTENSITIES].attrs["writer_key"]
        _write_header(f, self.header)
        f.close()
        self._file = None
        os.replace(self.partial, self.path)
        return self.path


def _write_header(f: h5py.File, scan: ScanData) -> None:
    """Everything of ``scan`` but the patterns, into the open file ``f`` (layout: the module docstring)."""
    e = f.require_group("entry")
    e.attrs["NX_class"] = "NXentry"
    for k, v in scan.attrs.items():
        e.attrs[k] = json.dumps(v, default=str) if isinstance(v, (dict, list)) else v
    d = e.require_group("data")
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


_REQUIRED = ("/entry/data/intensities", "/entry/data/positions_m", "/entry/data/angles_deg", "/entry/probe",
             "/entry/instrument/energy_kev", "/entry/instrument/detector_distance_m",
             "/entry/instrument/detector_pixel_m", "/entry/sample/volume_shape", "/entry/sample/voxel_size_m")


def _optional(f, name: str):
    return f[name][()] if name in f else None


def open_scan(path: str | Path) -> ScanData:
    """:func:`read_scan` with the patterns left in the file: ``intensities`` is a :class:`Patterns`
    read one angle at a time (each angle checked as it is read)."""
    return read_scan(path, lazy=True)


def read_scan(path: str | Path, lazy: bool = False) -> ScanData:
    """Read and validate a scan file; any problem is a one-line UserError naming file and field.

    ``lazy``: leave the patterns in the file (:func:`open_scan`); else they are read whole."""
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
            scan.intensities = Patterns(path, shape=f[INTENSITIES].shape) if lazy else f[INTENSITIES][()]
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


def read_probe_file(path: str | Path, scan: ScanData) -> tuple[np.ndarray, str]:
    """The probe modes ``(M, h, w)`` complex64 in ``path`` for ``scan``, and the dataset read.

    ``path`` is a retrieved-probe file (``/probe``, written by the golden standard: ``rapidtomo
    golden``'s ``--probe-out``, ``golden_probe.h5`` in a run directory) or a scan file
    (``/entry/probe``). The window must be the scan's patterns' ``(h, w)``, and the pixel (m) and
    energy (keV) where the file records them must be the scan's (relative 1e-6).

    Raises
    ------
    UserError
        The file is missing or unreadable, holds neither dataset, or its probe does not fit the scan.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: probe file not found")
    try:
        with h5py.File(path, "r") as f:
            name = "/probe" if "probe" in f else "/entry/probe" if "/entry/probe" in f else None
            if name is None:
                raise UserError(f"{path}: no /probe (retrieved probe) or /entry/probe (scan file) dataset")
            probe = np.asarray(f[name][()])
            if name == "/probe":
                pixel_m, energy_kev = f[name].attrs.get("pixel_size_m"), f[name].attrs.get("energy_kev")
            else:
                vs = f.get("/entry/sample/voxel_size_m")
                en = f.get("/entry/instrument/energy_kev")
                pixel_m = None if vs is None else np.ravel(vs[()])[-1]
                energy_kev = None if en is None else en[()]
    except OSError:
        raise UserError(f"{path}: not a readable HDF5 file") from None
    if probe.ndim == 2:
        probe = probe[None]
    h, w = scan.intensities.shape[-2:]
    if probe.ndim != 3 or probe.shape[-2:] != (h, w):
        raise UserError(f"{path}: {name} has shape {probe.shape}, but the scan's patterns are {h}x{w} "
                        f"(a probe (M, {h}, {w}) is needed)")
    if not np.all(np.isfinite(probe)) or not np.any(probe):
        raise UserError(f"{path}: {name} is zero or holds NaN/infinite values")
    for key, value, want, unit in (("pixel_size_m", pixel_m, scan.voxel_size_m[2], "m"),
                                   ("energy_kev", energy_kev, scan.energy_kev, "keV")):
        if value is not None and abs(float(value) - want) > 1e-6 * want:
            raise UserError(f"{path}: {name} {key} = {float(value):.6g} {unit}, but the scan's is {want:.6g} {unit}")
    return probe.astype(np.complex64), name

"""What an importer read, and reading it: fields with shapes, units and ranges, one-line errors.

:class:`ImportReport` records every field an importer reads (per field path: the files it came
from, shapes, dtype, unit, value range) and notes on conversions; ``text()`` is printed,
``to_dict()`` goes into the JSON written beside the output. :meth:`ImportReport.read` reads an
HDF5 dataset, checks it and records it; any problem is a :class:`~rapidtomo.errors.UserError`
naming the file and the field, so an importer stops before anything is written. Shared by
every importer: :func:`open_h5`, and the ``--angles-csv`` table (:func:`read_angles_csv`).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...errors import UserError


def open_h5(path: str | Path) -> h5py.File:
    """Open an HDF5 file (or a MATLAB v7.3 file) for reading; one-line errors if absent or not HDF5."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise UserError(f"{path}: not a readable HDF5 file") from None


def read_angles_csv(path: str | Path) -> dict[str, float]:
    """A CSV with a header ``file,angle_deg``: file name (or path) → rotation angle in degrees."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    out: dict[str, float] = {}
    with open(path, newline="") as fh:
        rows = csv.DictReader(fh)
        if rows.fieldnames is None or not {"file", "angle_deg"} <= set(rows.fieldnames):
            raise UserError(f"{path}: needs a header with columns file,angle_deg")
        for i, row in enumerate(rows, start=2):
            try:
                a = float(row["angle_deg"])
            except (TypeError, ValueError):
                raise UserError(f"{path}: line {i}: angle_deg {row['angle_deg']!r} is not a number") from None
            if not np.isfinite(a):
                raise UserError(f"{path}: line {i}: angle_deg is not finite")
            out[row["file"].strip()] = a
    return out


def angle_from_csv(angles: dict[str, float], file: Path, csv_path) -> float:
    """The angle of ``file`` in a table from :func:`read_angles_csv` (by path, then by name)."""
    for key in (str(file), file.name):
        if key in angles:
            return angles[key]
    raise UserError(f"{csv_path}: no angle for {file.name} (column file)")


class ImportReport:
    """Fields read by an importer (path → files, shapes, dtype, unit, min/max) and notes."""

    def __init__(self, format_name: str) -> None:
        self.format = format_name
        self.fields: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []

    def add(self, field: str, value: Any, unit: str = "", file: str | Path | None = None) -> None:
        """Record ``value`` (array or scalar) read at ``field``; ranges (of finite values) merge over files."""
        a = np.asarray(value)
        e = self.fields.setdefault(field, {"files": 0, "shapes": [], "dtype": str(a.dtype), "unit": unit})
        e["files"] += 1
        if list(a.shape) not in e["shapes"]:
            e["shapes"].append(list(a.shape))
        finite = a[np.isfinite(a)] if a.dtype.kind in "fc" else a
        if finite.size and a.dtype.kind in "biuf":
            lo, hi = float(finite.min()), float(finite.max())
            e["min"] = min(lo, e.get("min", lo))
            e["max"] = max(hi, e.get("max", hi))
        elif finite.size and a.dtype.kind == "c":
            m = float(np.abs(finite).max())
            e["max_abs"] = max(m, e.get("max_abs", m))
        if file is not None and e["files"] == 1:
            e["first_file"] = str(file)

    def note(self, text: str) -> None:
        """A conversion or assumption the user should know about (printed and saved)."""
        self.notes.append(text)

    def read(self, f: h5py.File, file: str | Path, *paths: str, unit: str = "", ndim: int | tuple[int, ...] | None = None,
             required: bool = True, finite: bool = True, record: bool = True) -> np.ndarray | None:
        """The first of ``paths`` present in ``f``, checked and recorded; None if absent and not required.

        ``ndim``: allowed numbers of dimensions (a scalar may be stored with shape (1,) or (1, 1)).
        ``finite``: refuse NaN or infinite values (in real and imaginary parts).
        ``record``: add it to the report (False when the caller records a checked part of it).
        """
        for p in paths:
            if p in f and isinstance(f[p], h5py.Dataset):
                break
        else:
            if required:
                raise UserError(f"{file}: missing dataset {' or '.join(paths)}")
            return None
        try:
            a = f[p][()]
        except (OSError, TypeError, ValueError) as e:
            raise UserError(f"{file}: {p} unreadable ({type(e).__name__}: {e})") from None
        return self.check(a, file, p, unit=unit, ndim=ndim, finite=finite, record=record)

    def attr(self, obj, name: str, file: str | Path, field: str, unit: str = "", required: bool = True) -> float | None:
        """A numeric HDF5 attribute ``name`` of ``obj`` (recorded as ``field``); None if absent and not required."""
        if name not in obj.attrs:
            if required:
                raise UserError(f"{file}: missing attribute {field}")
            return None
        return float(self.check(obj.attrs[name], file, field, unit=unit, ndim=0))

    def check(self, a, file: str | Path, field: str, unit: str = "", ndim: int | tuple[int, ...] | None = None,
              finite: bool = True, record: bool = True) -> np.ndarray:
        """Check an array read from ``field`` of ``file`` (see :meth:`read`), record it and return it."""
        a = np.asarray(a)
        if a.dtype.names and {"real", "imag"} <= set(a.dtype.names):  # MATLAB v7.3 complex
            a = a["real"] + 1j * a["imag"]
        if ndim is not None:
            allowed = (ndim,) if isinstance(ndim, int) else ndim
            if allowed == (0,) and a.size == 1:
                a = a.reshape(())
            if a.ndim not in allowed:
                raise UserError(f"{file}: {field} must have {' or '.join(map(str, allowed))} dimensions, "
                                f"has shape {a.shape}")
        if a.dtype.kind not in "biufc":
            raise UserError(f"{file}: {field} must be numeric, has type {a.dtype}")
        if finite and not np.all(np.isfinite(a)):
            raise UserError(f"{file}: {field} contains NaN or infinite values")
        if record:
            self.add(field, a, unit, file)
        return a

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "fields": self.fields, "notes": self.notes}

    def text(self) -> str:
        """One line per field: path, files, shapes, dtype, range and unit; then the notes."""
        lines = [f"read ({self.format}):"]
        for name, e in self.fields.items():
            shapes = " ".join("x".join(map(str, s)) or "scalar" for s in e["shapes"])
            rng = (f" [{e['min']:.4g}, {e['max']:.4g}]" if "min" in e else
                   f" |max| {e['max_abs']:.4g}" if "max_abs" in e else "")
            lines.append(f"  {name}: {shapes} {e['dtype']}{rng} {e['unit']}".rstrip() + f"  ({e['files']} file(s))")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

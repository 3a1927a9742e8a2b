"""3D volumes with their voxel sizes, in HDF5 (``/volume``) or zarr, and TIFF export.

Layout (docs/formats.md): dataset ``/volume`` of shape ``(z, y, x)``; attributes
``voxel_size_m = (dz, dy, dx)`` in metres, ``quantity`` (e.g. ``"phase_rad_per_voxel"``) and
provenance (``tool``, ``tool_version``, ``settings`` as JSON, ``sources``). An optional
``/attenuation`` dataset of the same shape holds -ln|t| per voxel.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import UserError
from .atomic import atomic_path


@dataclass
class Volume:
    """A ``(z, y, x)`` array with voxel sizes ``(dz, dy, dx)`` in metres and free-form attributes."""

    data: np.ndarray
    voxel_size_m: tuple[float, float, float]
    attrs: dict[str, Any] = field(default_factory=dict)
    attenuation: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        if self.data.ndim != 3:
            raise ValueError(f"Volume.data must be 3D (z, y, x), got shape {self.data.shape}")
        vs = tuple(float(v) for v in self.voxel_size_m)
        if len(vs) != 3 or not all(np.isfinite(vs)) or min(vs) <= 0:
            raise ValueError(f"voxel_size_m must be three positive lengths (dz, dy, dx), got {self.voxel_size_m}")
        self.voxel_size_m = vs
        if self.attenuation is not None:
            self.attenuation = np.asarray(self.attenuation)
            if self.attenuation.shape != self.data.shape:
                raise ValueError("attenuation must have the shape of data")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def extent_m(self) -> tuple[float, float, float]:
        """Physical size ``(Z dz, Y dy, X dx)`` in metres."""
        return tuple(n * d for n, d in zip(self.data.shape, self.voxel_size_m))  # type: ignore[return-value]


def _attr_value(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)) and not (isinstance(v, tuple) and all(isinstance(x, (int, float)) for x in v)):
        return json.dumps(v, default=str)
    return v


def write_volume(path: str | Path, volume: Volume, *, chunks: bool = True) -> Path:
    """Write ``volume`` to ``path`` (HDF5; ``.zarr`` for a zarr store) atomically."""
    path = Path(path)
    if path.suffix == ".zarr":
        from .zarr_store import write_volume_zarr
        return write_volume_zarr(path, volume)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            d = f.create_dataset("volume", data=volume.data, chunks=True if chunks else None)
            d.attrs["voxel_size_m"] = np.asarray(volume.voxel_size_m, dtype=np.float64)
            for k, v in volume.attrs.items():
                d.attrs[k] = _attr_value(v)
            if volume.attenuation is not None:
                f.create_dataset("attenuation", data=volume.attenuation, chunks=True if chunks else None)
    return path


def read_volume(path: str | Path) -> Volume:
    """Read a volume written by :func:`write_volume` (HDF5 or zarr); errors name file and field."""
    path = Path(path)
    if path.suffix == ".zarr":
        from .zarr_store import read_volume_zarr
        return read_volume_zarr(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise UserError(f"{path}: not a readable HDF5 file") from None
    with f:
        if "volume" not in f:
            raise UserError(f"{path}: missing dataset /volume")
        d = f["volume"]
        if d.ndim != 3:
            raise UserError(f"{path}: /volume must be 3D (z, y, x), has shape {d.shape}")
        if "voxel_size_m" not in d.attrs:
            raise UserError(f"{path}: /volume has no attribute voxel_size_m")
        vs = np.asarray(d.attrs["voxel_size_m"], dtype=np.float64).ravel()
        if vs.size != 3 or not np.all(np.isfinite(vs)) or np.any(vs <= 0):
            raise UserError(f"{path}: /volume voxel_size_m must be three positive lengths, got {vs.tolist()}")
        data = d[()]
        if not np.all(np.isfinite(data)):
            raise UserError(f"{path}: /volume contains NaN or infinite values")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in d.attrs.items() if k != "voxel_size_m"}
        att = f["attenuation"][()] if "attenuation" in f else None
        if att is not None and att.shape != data.shape:
            raise UserError(f"{path}: /attenuation shape {att.shape} differs from /volume {data.shape}")
    return Volume(data, tuple(vs), attrs, att)

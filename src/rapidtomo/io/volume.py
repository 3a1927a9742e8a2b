"""3D volumes with their voxel sizes, in HDF5 (``/volume``) or zarr (a ``.zarr`` folder).

Layout (docs/formats.md): array ``volume`` of shape ``(z, y, x)``; attributes
``voxel_size_m = (dz, dy, dx)`` in metres, ``quantity`` (e.g. ``"phase_rad_per_voxel"``) and
provenance (``tool``, ``tool_version``, ``settings`` as JSON, ``sources``). An optional
``attenuation`` array of the same shape holds -ln|t| per voxel. A path ending in ``.zarr`` is a
zarr (v3) group with the same names and attributes; any other path is an HDF5 file.

:func:`open_volume` and :func:`create_volume` stream: their arrays are sliced like numpy without
loading the whole volume, so volumes larger than memory pass through inference and export.
:func:`read_volume` / :func:`write_volume` are the in-memory pair built on them. Every write goes
to a temporary file or folder beside the target and is renamed over it only when complete.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import h5py
import numpy as np

from ..errors import UserError
from .atomic import atomic_dir, atomic_path


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


@dataclass
class VolumeFile:
    """An open volume file. ``data`` (and ``attenuation``) are the file's ``(z, y, x)`` arrays
    (h5py dataset or zarr array): slicing reads or writes only that part."""

    path: Path
    data: Any
    voxel_size_m: tuple[float, float, float]
    attrs: dict[str, Any]
    attenuation: Any | None
    close: Callable[[], None]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    def read(self) -> Volume:
        """The whole volume in memory; NaN or infinite values are a :class:`UserError`."""
        data = self.data[...]
        if not np.all(np.isfinite(data)):
            raise UserError(f"{self.path}: /volume contains NaN or infinite values")
        att = None if self.attenuation is None else self.attenuation[...]
        return Volume(data, self.voxel_size_m, dict(self.attrs), att)

    def __enter__(self) -> "VolumeFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_zarr(path: str | Path) -> bool:
    return Path(path).suffix == ".zarr"


def _h5_attr(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)) and not (isinstance(v, tuple) and all(isinstance(x, (int, float)) for x in v)):
        return json.dumps(v, default=str)
    return v


def _zarr_attr(v: Any) -> Any:
    v = _h5_attr(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return list(v) if isinstance(v, tuple) else v


def _attr_from_file(v: Any) -> Any:
    """An attribute as Python: bytes decoded, numpy scalars as int/float/str (so JSON takes them)."""
    if isinstance(v, bytes):
        return v.decode()
    return v.item() if isinstance(v, np.generic) else v


def _open_arrays(path: Path) -> tuple[Any, Any, Callable[[], None]]:
    """(volume array, attenuation array or None, closer) of an existing file or zarr store."""
    if is_zarr(path):
        import zarr
        try:
            g = zarr.open_group(str(path), mode="r")
        except Exception:
            raise UserError(f"{path}: not a readable zarr store") from None
        if "volume" not in g:
            raise UserError(f"{path}: missing array /volume")
        return g["volume"], g["attenuation"] if "attenuation" in g else None, lambda: None
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise UserError(f"{path}: not a readable HDF5 file") from None
    if "volume" not in f:
        f.close()
        raise UserError(f"{path}: missing dataset /volume")
    return f["volume"], f["attenuation"] if "attenuation" in f else None, f.close


def open_volume(path: str | Path) -> VolumeFile:
    """Open a volume file (HDF5, or zarr for ``.zarr``) for reading, checking its layout.

    Use as a context manager (``with open_volume(p) as v: v.data[:, :, x0:x1]``). A missing or
    malformed file is a one-line :class:`UserError` naming the file and the field.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    d, att, close = _open_arrays(path)
    try:
        if d.ndim != 3:
            raise UserError(f"{path}: /volume must be 3D (z, y, x), has shape {d.shape}")
        if "voxel_size_m" not in d.attrs:
            raise UserError(f"{path}: /volume has no attribute voxel_size_m")
        vs = np.asarray(d.attrs["voxel_size_m"], dtype=np.float64).ravel()
        if vs.size != 3 or not np.all(np.isfinite(vs)) or np.any(vs <= 0):
            raise UserError(f"{path}: /volume voxel_size_m must be three positive lengths, got {vs.tolist()}")
        if att is not None and att.shape != d.shape:
            raise UserError(f"{path}: /attenuation shape {att.shape} differs from /volume {d.shape}")
        attrs = {k: _attr_from_file(v) for k, v in d.attrs.items() if k != "voxel_size_m"}
    except BaseException:
        close()
        raise
    return VolumeFile(path, d, tuple(float(v) for v in vs), attrs, att, close)


def _arrays(dtype, attenuation_dtype) -> list[tuple[str, Any]]:
    return [("volume", dtype)] + ([("attenuation", attenuation_dtype)] if attenuation_dtype is not None else [])


@contextmanager
def create_volume(path: str | Path, shape: tuple[int, int, int], voxel_size_m, attrs: dict[str, Any] | None = None,
                  dtype=np.float32, chunks: tuple[int, int, int] | None = None,
                  attenuation_dtype=None) -> Iterator[VolumeFile]:
    """Create a volume file to fill slice by slice; it replaces ``path`` only if the block succeeds.

    ``shape (z, y, x)``, ``voxel_size_m (dz, dy, dx)``; ``attrs`` are stored beside voxel_size_m
    (dicts and lists as JSON). ``chunks`` defaults to the library's choice. Yields a
    :class:`VolumeFile` whose ``data`` (and ``attenuation``, of ``attenuation_dtype``, if that is
    given) are to be written. On an
    error nothing is left behind and an existing ``path`` is untouched.
    """
    path = Path(path)
    shape = tuple(int(n) for n in shape)
    vs = tuple(float(v) for v in voxel_size_m)
    attrs = dict(attrs or {})
    if is_zarr(path):
        with atomic_dir(path) as tmp:
            arrays = init_zarr_volume(tmp, shape, vs, attrs, dtype, chunks, attenuation_dtype)
            yield VolumeFile(path, arrays[0], vs, attrs, arrays[1] if len(arrays) > 1 else None, lambda: None)
        return
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        arrays = [f.create_dataset(name, shape=shape, dtype=dt, chunks=chunks or True)
                  for name, dt in _arrays(dtype, attenuation_dtype)]
        arrays[0].attrs["voxel_size_m"] = np.asarray(vs, dtype=np.float64)
        for k, v in attrs.items():
            arrays[0].attrs[k] = _h5_attr(v)
        yield VolumeFile(path, arrays[0], vs, attrs, arrays[1] if len(arrays) > 1 else None, f.close)


def init_zarr_volume(path: str | Path, shape: tuple[int, int, int], voxel_size_m, attrs: dict[str, Any],
                     dtype=np.float32, chunks: tuple[int, int, int] | None = None, attenuation_dtype=None) -> list:
    """Create the zarr volume layout at ``path`` in place (replacing what is there): arrays
    ``volume`` (and ``attenuation``) of ``shape (z, y, x)``, attributes as :func:`create_volume`'s.
    Returns the arrays; for a store that workers fill (:func:`rapidtomo.infer.predict_file` on a
    cluster), else use :func:`create_volume`, which is atomic."""
    import zarr
    g = zarr.open_group(str(path), mode="w")
    arrays = [g.create_array(name, shape=tuple(shape), chunks=chunks or "auto", dtype=dt)
              for name, dt in _arrays(dtype, attenuation_dtype)]
    arrays[0].attrs.update({"voxel_size_m": [float(v) for v in voxel_size_m],
                            **{k: _zarr_attr(v) for k, v in attrs.items()}})
    return arrays


def write_volume(path: str | Path, volume: Volume) -> Path:
    """Write ``volume`` to ``path`` (HDF5; zarr for ``.zarr``) atomically; returns ``path``."""
    path = Path(path)
    with create_volume(path, volume.shape, volume.voxel_size_m, volume.attrs, dtype=volume.data.dtype,
                       attenuation_dtype=None if volume.attenuation is None else volume.attenuation.dtype) as f:
        f.data[...] = volume.data
        if volume.attenuation is not None:
            f.attenuation[...] = volume.attenuation
    return path


def read_volume(path: str | Path) -> Volume:
    """Read a volume written by :func:`write_volume` (HDF5 or zarr); errors name file and field."""
    with open_volume(path) as f:
        return f.read()

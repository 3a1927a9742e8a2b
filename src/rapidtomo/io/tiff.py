"""TIFF export of a volume file for Fiji/napari: a float32 ImageJ stack, streamed slice by slice."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .atomic import atomic_path
from .volume import open_volume


def export_tiff(volume_path: str | Path, out_path: str | Path) -> Path:
    """Write the volume file ``volume_path`` (HDF5 or ``.zarr``, ``(z, y, x)``) to ``out_path``
    (``.tif``/``.tiff``) as a float32 ImageJ hyperstack, axes ZYX, voxel size in µm.

    One z slice is in memory at a time; the TIFF is written to a temporary file and renamed, so
    an existing ``out_path`` survives an error. Raises :class:`UserError` for a bad suffix or a
    malformed volume file.
    """
    import tifffile
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".tif", ".tiff"):
        raise UserError(f"{out_path}: the output must end in .tif or .tiff")
    with open_volume(volume_path) as v:
        dz, dy, dx = (d * 1e6 for d in v.voxel_size_m)

        def slices():
            for z in range(v.shape[0]):
                s = np.asarray(v.data[z], dtype=np.float32)
                if not np.all(np.isfinite(s)):
                    raise UserError(f"{v.path}: /volume contains NaN or infinite values")
                yield s

        with atomic_path(out_path) as tmp:
            tifffile.imwrite(tmp, slices(), shape=v.shape, dtype=np.float32, imagej=True,
                             resolution=(1 / dx, 1 / dy), metadata={"axes": "ZYX", "spacing": dz, "unit": "um"})
    return out_path

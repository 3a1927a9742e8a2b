"""TIFF stacks (e.g. a golden standard from Fiji, TomoPy or another tool) → :class:`Volume`.

The stack's pages are z (the beam direction at θ = 0), rows y (the rotation axis), columns x,
as ``rapidtomo export-tiff`` writes them; the values are phase per voxel in radians. The voxel
size is not read from the file: give ``--voxel-size`` (metres).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError
from ..volume import Volume
from .projections import decide_sign
from .report import ImportReport


def read_tiff(path: str | Path, voxel_size_m: tuple[float, float, float], phase_sign: str,
              report: ImportReport) -> Volume:
    """A ``(z, y, x)`` phase volume from a TIFF stack; φ = s·values with s from ``phase_sign``."""
    import tifffile
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        data = tifffile.imread(path)
    except (tifffile.TiffFileError, ValueError, OSError) as e:
        raise UserError(f"{path}: not a readable TIFF file ({type(e).__name__}: {e})") from None
    data = report.check(np.squeeze(data), path, "pages", unit="rad per voxel", ndim=3)
    if np.iscomplexobj(data):
        raise UserError(f"{path}: pages must be real phase values, are {data.dtype}")
    s = decide_sign(data, phase_sign, str(path), report)
    return Volume((s * data).astype(np.float32), voxel_size_m,
                  {"quantity": "phase_rad_per_voxel", "imported_from": "tiff", "sources": [str(path)],
                   "phase_sign": s})

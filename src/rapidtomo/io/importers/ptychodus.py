"""ptychodus HDF5 products (one per angle) → :class:`ObjectImage`.

Read: ``/object`` ``(H, W)`` or ``(L, H, W)`` complex with attributes ``pixel_height_m`` and
``pixel_width_m``; the file attribute ``tomography_angle_deg`` (newer ptychodus) unless
``--angles-csv`` gives the angles. Probe, positions and costs are not needed for projections.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError
from .projections import ObjectImage
from .report import ImportReport, open_h5


def read_ptychodus(path: str | Path, report: ImportReport) -> ObjectImage:
    """One ptychodus product file: the object, its pixel ``(dy, dx)`` and, if stored, the angle."""
    path = Path(path)
    with open_h5(path) as f:
        obj = report.read(f, path, "/object", unit="complex transmission", ndim=(2, 3))
        if not np.iscomplexobj(obj):
            raise UserError(f"{path}: /object must be complex (the transmission), is {obj.dtype}")
        pix = tuple(report.attr(f["object"], f"pixel_{k}_m", path, f"/object@pixel_{k}_m", "m")
                    for k in ("height", "width"))
        for k, v in zip(("height", "width"), pix):
            if not 1e-11 < v < 1e-4:
                raise UserError(f"{path}: /object@pixel_{k}_m = {v:g} is not an object pixel in metres (1e-11..1e-4)")
        angle = report.attr(f, "tomography_angle_deg", path, "/@tomography_angle_deg", "deg", required=False)
    return ObjectImage(obj, pix, str(path), angle)

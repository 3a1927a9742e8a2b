"""DXchange files of phase projections → :class:`Projections`.

Read: ``/exchange/data`` ``(n_angles, Y, X)`` projected phase in radians (real), and
``/exchange/theta`` ``(n_angles,)`` rotation angles in degrees (the DXchange convention). The
pixel is not read from the file: give ``--voxel-size``. The rotation axis is taken at the
central column.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError
from .projections import Projections, decide_sign
from .report import ImportReport, open_h5


def read_dxchange(path: str | Path, pixel_m: tuple[float, float], phase_sign: str,
                  report: ImportReport) -> Projections:
    """Phase projections and angles of one DXchange file; φ = s·data with s from ``phase_sign``."""
    path = Path(path)
    with open_h5(path) as f:
        data = report.read(f, path, "/exchange/data", unit="rad", ndim=3)
        theta = report.read(f, path, "/exchange/theta", unit="deg", ndim=1)
    if np.iscomplexobj(data):
        raise UserError(f"{path}: /exchange/data must be real phase projections (radians), is {data.dtype}")
    if len(theta) != len(data):
        raise UserError(f"{path}: /exchange/theta has {len(theta)} angles but /exchange/data {len(data)} projections")
    if np.abs(theta).max(initial=0) > 360:
        raise UserError(f"{path}: /exchange/theta reaches {np.abs(theta).max():g}, not an angle in degrees")
    s = decide_sign(data, phase_sign, str(path), report)
    return Projections((s * data).astype(np.float32), theta.astype(np.float64), pixel_m, [str(path)], s)

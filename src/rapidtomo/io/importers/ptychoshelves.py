"""PtychoShelves reconstructions (one file per angle) → :class:`ObjectImage`.

Two layouts, told apart by the file's signature:

* ``*_recons.mat`` (MATLAB v6/v5, read with scipy.io): ``object`` ``(H, W)`` or ``(H, W, L)``
  complex, ``p.dx_spec`` = ``[dy, dx]`` object pixel in metres.
* ``Niter*.mat`` (MATLAB v7.3 = HDF5): the same variables, stored column-major, so h5py sees
  them transposed (``object`` as ``(W, H)`` or ``(L, W, H)``), complex numbers as a compound of
  ``real`` and ``imag``; the pixel at ``/p/dx_spec``.

PtychoShelves files hold no rotation angle: give ``--angles-csv``. Its objects follow
O = exp(iψ) with ψ < 0 in matter (``--phase-sign auto`` finds φ = −ψ).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ...errors import UserError
from .projections import ObjectImage
from .report import ImportReport, open_h5


def _pixel(dx_spec, file, field: str, report: ImportReport) -> tuple[float, float]:
    d = report.check(np.ravel(dx_spec), file, field, unit="m", ndim=1)
    if d.size == 1:
        d = np.repeat(d, 2)
    if d.size != 2 or not np.all((d > 1e-11) & (d < 1e-4)):
        raise UserError(f"{file}: {field} must be the object pixel [dy, dx] in metres (1e-11..1e-4), got {d.tolist()}")
    return float(d[0]), float(d[1])


def _read_v73(path: Path, report: ImportReport) -> ObjectImage:
    with open_h5(path) as f:
        obj = report.read(f, path, "/object", unit="complex transmission", ndim=(2, 3))
        if "p" not in f or not isinstance(f["p"], h5py.Group):
            raise UserError(f"{path}: missing group /p (the PtychoShelves parameters, for p.dx_spec)")
        dx = report.read(f, path, "/p/dx_spec", unit="m", ndim=(1, 2))
    obj = obj.T  # MATLAB column-major: (H, W) or (H, W, L)
    if obj.ndim == 3:
        obj = np.moveaxis(obj, 2, 0)
    return ObjectImage(obj, _pixel(dx, path, "/p/dx_spec", report), str(path))


def _read_v6(path: Path, report: ImportReport) -> ObjectImage:
    import scipy.io
    try:
        m = scipy.io.loadmat(path, simplify_cells=True)
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError, NotImplementedError) as e:
        raise UserError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e})") from None
    if "object" not in m:
        raise UserError(f"{path}: missing variable object")
    obj = report.check(m["object"], path, "object", unit="complex transmission", ndim=(2, 3))
    p = m.get("p")
    if not isinstance(p, dict) or "dx_spec" not in p:
        raise UserError(f"{path}: missing variable p.dx_spec (the object pixel size)")
    if obj.ndim == 3:
        obj = np.moveaxis(obj, 2, 0)
    return ObjectImage(obj, _pixel(p["dx_spec"], path, "p.dx_spec", report), str(path))


def read_ptychoshelves(path: str | Path, report: ImportReport) -> ObjectImage:
    """One PtychoShelves reconstruction (v6 ``*_recons.mat`` or v7.3 ``Niter*.mat``); no angle."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    img = _read_v73(path, report) if h5py.is_hdf5(path) else _read_v6(path, report)
    if not np.iscomplexobj(img.obj):
        raise UserError(f"{path}: object must be complex (the transmission), is {img.obj.dtype}")
    return img

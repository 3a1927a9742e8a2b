"""The acquisition geometry that an approximant was made in, and that a model is valid for.

A network maps approximants to volumes; it has learnt the artefacts of one geometry (energy,
detector, angles, θmax, slab count, sample depth, voxel size, approximant settings), so a model
applied to an approximant of another geometry gives confident nonsense. Every approximant file
made by ``rapidtomo approximant`` (and every corpus sample of ``rapidtomo pretrain``) carries its
geometry as the JSON attribute ``geometry`` (:func:`scan_geometry`); a model file records the
geometry of the approximants it was trained on in its ``training`` JSON (``geometry``), and
``train --init`` and ``predict`` refuse a model whose geometry differs (:func:`check_geometry`).

Geometry record (all SI, angles in degrees)::

    energy_kev, detector_pixel_m, detector_distance_m, detector_size (h = w, pixels),
    n_angles, theta_max_deg (last − first angle), n_slabs, depth_m (Z·dz of the object grid),
    volume_shape (Z, Y, X of the object grid), voxel_size_m (dz, dy, dx), photons (mean counts
    per pattern; recorded, not checked), approximant (the approximant settings that shape the
    result) and approximant_hash (sha256 of them, 16 hex digits)

Checked: every field but ``volume_shape[1:]`` (a model tiles any lateral size) and ``photons``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np

from .io.scan import mean_photons

log = logging.getLogger("rapidtomo.validity")

# approximant settings that do not change the result (where it runs, how it batches, what it holds in memory)
_APPROX_IGNORED = ("device", "batch_size", "patterns_memory_gb")
# (field, relative tolerance) compared by check_geometry; None: exact
CHECKED: tuple[tuple[str, float | None], ...] = (
    ("energy_kev", 1e-4), ("detector_pixel_m", 1e-4), ("detector_distance_m", 1e-3), ("detector_size", None),
    ("n_angles", None), ("theta_max_deg", 1e-3), ("n_slabs", None), ("depth_m", 1e-3), ("voxel_size_m", 1e-3),
    ("approximant_hash", None))


def approximant_hash(approximant_settings: dict[str, Any]) -> str:
    """16 hex digits of sha256 over the approximant settings that shape the result."""
    kept = {k: v for k, v in sorted(approximant_settings.items()) if k not in _APPROX_IGNORED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def scan_geometry(scan, approximant_settings) -> dict[str, Any]:
    """The geometry record of an approximant made from ``scan`` (a :class:`~rapidtomo.io.ScanData`)
    with ``approximant_settings`` (:class:`~rapidtomo.recon.ApproximantSettings`)."""
    a = approximant_settings.to_dict()
    angles = np.asarray(scan.angles_deg, dtype=np.float64)
    Z = scan.volume_shape[0]
    return {"energy_kev": float(scan.energy_kev), "detector_pixel_m": float(scan.detector_pixel_m),
            "detector_distance_m": float(scan.detector_distance_m),
            "detector_size": int(scan.intensities.shape[-1]), "n_angles": int(len(angles)),
            "theta_max_deg": float(angles.max() - angles.min()) if len(angles) else 0.0,
            "n_slabs": int(a["n_slabs"]), "depth_m": float(Z * scan.voxel_size_m[0]),
            "volume_shape": [int(v) for v in scan.volume_shape],
            "voxel_size_m": [float(v) for v in scan.voxel_size_m],
            "photons": mean_photons(scan.intensities),
            "approximant": {k: v for k, v in a.items() if k not in _APPROX_IGNORED},
            "approximant_hash": approximant_hash(a)}


def geometry_from_attrs(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The ``geometry`` attribute of a volume (JSON text or dict), or None if it has none."""
    g = attrs.get("geometry")
    if g is None:
        return None
    return json.loads(g) if isinstance(g, (str, bytes)) else dict(g)


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """``"field A vs B"`` for each checked field that differs between two geometry records
    (``expected`` the model's, ``actual`` the data's); fields missing on either side are skipped."""
    out = []
    for key, tol in CHECKED:
        if key not in expected or key not in actual:
            continue
        a, b = expected[key], actual[key]
        if tol is None:
            same = a == b
        else:
            va, vb = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
            same = va.shape == vb.shape and bool(np.all(np.abs(va - vb) <= tol * np.maximum(np.abs(va), np.abs(vb))))
        if not same:
            out.append(f"{key} {_show(a)} vs {_show(b)}")
    return out


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "(" + ", ".join(_show(x) for x in v) + ")"
    return str(v)


def check_geometry(model_name: str, model_geometry: dict[str, Any] | None, data_name: str,
                   data_geometry: dict[str, Any] | None) -> None:
    """Raise a one-line :class:`~rapidtomo.errors.UserError` naming what differs when the model's
    geometry does not fit the data's; warn (and pass) when either side has no record."""
    from .errors import UserError
    if model_geometry is None or data_geometry is None:
        missing = model_name if model_geometry is None else data_name
        log.warning(f"{missing}: no geometry record; cannot check that the model fits {data_name}")
        return
    diff = differences(model_geometry, data_geometry)
    if diff:
        raise UserError(f"{model_name}: made for another geometry than {data_name}: {'; '.join(diff)} "
                        f"(model vs data)")

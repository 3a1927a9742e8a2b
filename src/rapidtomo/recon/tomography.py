"""Tomography with ASTRA: FBP and SART of phase projections, one 2D problem per y row.

Projections ``(n_angles, Y, W)`` are line integrals of the phase (radians) on detector pixels of
width dx, axis at column ``(W − 1)/2``, in the beam-frame convention of docs/conventions.md
(``x' = x·cosθ + z·sinθ``); ASTRA's parallel-beam angle is −θ in this convention (pinned by
tests/recon/test_tomography.py). Reconstruction runs on an isotropic dx grid (ASTRA's CPU
projectors assume square pixels) and is averaged or interpolated onto the nominal z grid; the
result is phase per voxel ``(Z, Y, X)``. CUDA algorithms (FBP_CUDA, SART_CUDA) are used when
ASTRA has a GPU.
"""
from __future__ import annotations

import astra
import numpy as np

from ..progress import progress


def _use_cuda() -> bool:
    try:
        return bool(astra.use_cuda())
    except Exception:  # astra builds without CUDA support
        return False


def _iso_rows(volume_shape, voxel_size_m) -> int:
    Z, _, _ = volume_shape
    dz, _, dx = voxel_size_m
    return max(1, int(round(Z * dz / dx)))


def _to_nominal_z(iso: np.ndarray, Z: int) -> np.ndarray:
    """Resample ``(Zi, Y, X)`` density (per dx) onto Z slices by linear interpolation of centres."""
    Zi = iso.shape[0]
    if Zi == Z:
        return iso
    centres = (np.arange(Z) + 0.5) * Zi / Z - 0.5
    lo = np.clip(np.floor(centres).astype(int), 0, Zi - 1)
    hi = np.clip(lo + 1, 0, Zi - 1)
    w = np.clip(centres - lo, 0, 1)[:, None, None]
    return (1 - w) * iso[lo] + w * iso[hi]


def reconstruct(projections: np.ndarray, angles_deg, volume_shape, voxel_size_m, method: str = "fbp",
                sweeps: int = 10, filter_type: str = "ram-lak", min_constraint: float | None = None,
                seed: int = 0, show_progress: bool = True) -> np.ndarray:
    """FBP or SART of ``projections (n_angles, Y, W)`` → phase per voxel ``(Z, Y, X)`` float32.

    ``sweeps``: SART passes over all angles (ASTRA counts one projection per iteration, so it
    runs ``sweeps · n_angles`` iterations, each sweep in a random order drawn from ``seed``).
    ``min_constraint``: SART lower bound
    on the phase density (e.g. 0 for a sample in air).
    """
    if method not in ("fbp", "sart"):
        raise ValueError(f"method must be 'fbp' or 'sart', got {method!r}")
    P = np.asarray(projections, dtype=np.float32)
    n_ang, Y, W = P.shape
    Z, Yv, X = volume_shape
    if Yv != Y:
        raise ValueError(f"projections have {Y} rows but the volume has Y = {Yv}")
    dz, _, dx = voxel_size_m
    Zi = _iso_rows(volume_shape, voxel_size_m)
    cuda = _use_cuda()
    vg = astra.create_vol_geom(Zi, X, -X / 2, X / 2, -Zi / 2, Zi / 2)
    pg = astra.create_proj_geom("parallel", 1.0, W, -np.deg2rad(np.asarray(angles_deg, dtype=np.float64)))
    pid = None if cuda else astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, 0)
    rid = astra.data2d.create("-vol", vg, 0)
    name = ("FBP" if method == "fbp" else "SART") + ("_CUDA" if cuda else "")
    cfg = astra.astra_dict(name)
    cfg["ProjectionDataId"], cfg["ReconstructionDataId"] = sid, rid
    if pid is not None:
        cfg["ProjectorId"] = pid
    if method == "fbp":
        cfg["FilterType"] = filter_type
    else:
        # a fresh seeded permutation of the angles per sweep: random order, repeatable runs
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(n_ang) for _ in range(sweeps)])
        cfg["option"] = {"ProjectionOrder": "custom", "ProjectionOrderList": order.astype(np.float64)}
        if min_constraint is not None:
            cfg["option"]["MinConstraint"] = float(min_constraint)
    alg = astra.algorithm.create(cfg)
    out = np.empty((Zi, Y, X), np.float32)
    rows = range(Y)
    if show_progress:
        rows = progress(rows, desc=f"{method.upper()} rows", total=Y, unit="row")
    try:
        for y in rows:
            astra.data2d.store(sid, np.ascontiguousarray(P[:, y, :]))
            astra.data2d.store(rid, 0)
            astra.algorithm.run(alg, 1 if method == "fbp" else sweeps * n_ang)
            out[:, y, :] = astra.data2d.get(rid)
    finally:
        astra.algorithm.delete(alg)
        astra.data2d.delete([sid, rid])
        if pid is not None:
            astra.projector.delete(pid)
    # ASTRA returns density per dx; phase per nominal voxel = density · dz / dx
    return (_to_nominal_z(out, Z) * (dz / dx)).astype(np.float32)


def fbp(projections, angles_deg, volume_shape, voxel_size_m, **kw) -> np.ndarray:
    """Filtered back-projection (ASTRA FBP, Ram-Lak by default); see :func:`reconstruct`."""
    return reconstruct(projections, angles_deg, volume_shape, voxel_size_m, method="fbp", **kw)


def sart(projections, angles_deg, volume_shape, voxel_size_m, sweeps: int = 10, **kw) -> np.ndarray:
    """SART with ``sweeps`` full passes over the angles (the paper: 10); see :func:`reconstruct`."""
    return reconstruct(projections, angles_deg, volume_shape, voxel_size_m, method="sart", sweeps=sweeps, **kw)

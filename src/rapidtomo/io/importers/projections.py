"""Per-angle reconstructions made elsewhere → phase projections in rapidtomo's sign convention.

rapidtomo stores φ = 2π·δ·Δ/λ ≥ 0 in matter. A code whose object is O = exp(iψ) with ψ < 0 in
matter (it writes the transmission as exp(+i·k·(n − 1)·Δ) = exp(−i·k·δ·Δ): PtychoShelves, and
most codes without an explicit sign flip) needs φ = −ψ. ``phase_sign`` is the factor s in
φ = s·ψ: +1, −1, or "auto": the sign that makes the mean phase inside the support (pixels whose
|ψ| exceeds 10 % of the 99th percentile of |ψ|, after removing the vacuum offset) positive.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.restoration import unwrap_phase

from ...errors import UserError
from .report import ImportReport

PHASE_SIGNS = ("auto", "+1", "-1")


@dataclass
class ObjectImage:
    """One angle's reconstructed object: ``(H, W)`` or ``(L, H, W)`` complex, pixel ``(dy, dx)`` in m."""

    obj: np.ndarray
    pixel_m: tuple[float, float]
    source: str
    angle_deg: float | None = None


@dataclass
class Projections:
    """Phase projections ``(n_angles, Y, W)`` in radians (φ ≥ 0 in matter), angles, pixel ``(dy, dx)``,
    and the factor s (±1) applied to the files' phase."""

    phase: np.ndarray
    angles_deg: np.ndarray
    pixel_m: tuple[float, float]
    sources: list[str] = field(default_factory=list)
    phase_sign: int = 1


def decide_sign(psi: np.ndarray, phase_sign: str, source: str, report: ImportReport) -> int:
    """The factor s of φ = s·ψ: from ``phase_sign`` ("+1", "-1"), or "auto" from the support's mean."""
    if phase_sign not in PHASE_SIGNS:
        raise UserError(f"--phase-sign must be one of {', '.join(PHASE_SIGNS)}, got {phase_sign!r}")
    if phase_sign != "auto":
        s = int(phase_sign)
        report.note(f"phase sign {s:+d} as given (φ = {'' if s > 0 else '−'}ψ)")
        return s
    a = np.abs(psi)
    support = a > 0.1 * np.percentile(a, 99)
    mean = float(psi[support].mean()) if support.any() else 0.0
    if mean == 0.0:
        raise UserError(f"{source}: cannot decide the phase sign (no contrast in the phase): give --phase-sign")
    s = 1 if mean > 0 else -1
    report.note(f"phase sign {s:+d} chosen automatically: mean phase {mean:.4g} rad inside the support "
                f"({int(support.sum())} pixels); matter must come out positive")
    return s


def object_phase(obj: np.ndarray, border_fraction: float = 0.05) -> np.ndarray:
    """Projected phase ψ of ``(H, W)`` or ``(L, H, W)`` complex layers: the angle of their product,
    unwrapped when neighbours jump by more than π, minus the median of the outer frame (vacuum)."""
    o = np.prod(obj, axis=0) if obj.ndim == 3 else obj
    psi = np.angle(o)
    jumps = max(np.abs(np.diff(psi, axis=0)).max(initial=0), np.abs(np.diff(psi, axis=1)).max(initial=0))
    if jumps > np.pi:
        psi = unwrap_phase(psi)
    H, W = psi.shape
    b = max(1, int(border_fraction * min(H, W)))
    frame = np.ones_like(psi, bool)
    frame[b:H - b, b:W - b] = False
    return psi - np.median(psi[frame])


def _crop(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    r0, c0 = (a.shape[-2] - shape[0]) // 2, (a.shape[-1] - shape[1]) // 2
    return a[..., r0:r0 + shape[0], c0:c0 + shape[1]]


def stack_objects(images: list[ObjectImage], phase_sign: str, report: ImportReport) -> Projections:
    """Phase projections of per-angle objects, cropped to their common central size.

    The rotation axis is taken at each object's central column, mid-height at its central row.
    All objects need the same pixel size and an angle.
    """
    if not images:
        raise UserError("no input files")
    pix = images[0].pixel_m
    for im in images:
        if im.angle_deg is None:
            raise UserError(f"{im.source}: no rotation angle in the file: give --angles-csv")
        if not np.allclose(im.pixel_m, pix, rtol=1e-6, atol=0):
            raise UserError(f"{im.source}: pixel size {im.pixel_m} m differs from {pix} m in {images[0].source}")
    H = min(im.obj.shape[-2] for im in images)
    W = min(im.obj.shape[-1] for im in images)
    if any(im.obj.shape[-2:] != (H, W) for im in images):
        report.note(f"objects of different sizes cropped to their common central {H}x{W}")
    psi = np.stack([object_phase(_crop(im.obj, (H, W))) for im in images])
    s = decide_sign(psi, phase_sign, images[0].source, report)
    report.note("phase: angle of the product of the layers, unwrapped if wrapped, offset = median of the "
                "outer 5 % frame (vacuum)")
    return Projections((s * psi).astype(np.float32), np.array([im.angle_deg for im in images]), pix,
                       [im.source for im in images], s)

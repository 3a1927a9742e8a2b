"""Training pairs: checks, z resampling, per-volume normalisation and patch extraction.

The approximant ``A`` is ``(Za, Y, X)``, the target (golden standard) ``G`` is ``(Zg, 2Y, 2X)``.
When ``Za ≠ Zg``, ``A`` is resampled along z to ``Zg`` by linear interpolation (cell-centred:
both grids span the same thickness). Normalisation is per volume, ``(v − mean)/std``: ``A``'s
statistics over the whole approximant (it is measured everywhere), ``G``'s over the training band
only (x < x_val), so nothing of the validation or held-out target enters training.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..io import Volume
from .split import patch_starts, split_index, validation_index

log = logging.getLogger("rapidtomo.train")


def resample_z(data: np.ndarray | torch.Tensor, nz: int) -> torch.Tensor:
    """``(Z, Y, X)`` → ``(nz, Y, X)`` float32 tensor, linear interpolation along z (cell-centred)."""
    t = torch.as_tensor(np.asarray(data, dtype=np.float32) if not torch.is_tensor(data) else data).float()
    if t.shape[0] == nz:
        return t
    out = F.interpolate(t.reshape(1, 1, t.shape[0], -1), size=(nz, t.shape[1] * t.shape[2]), mode="bilinear",
                        align_corners=False)
    return out.reshape(nz, t.shape[1], t.shape[2])


def check_pair(approx_shape: tuple[int, ...], target_shape: tuple[int, ...], names: tuple[str, str]) -> None:
    """Raise a one-line :class:`UserError` unless the target is 2x the approximant in y and x."""
    if len(approx_shape) != 3 or len(target_shape) != 3:
        raise UserError(f"{names[0]}, {names[1]}: volumes must be 3D (z, y, x)")
    za, ya, xa = approx_shape
    zg, yg, xg = target_shape
    if (yg, xg) != (2 * ya, 2 * xa):
        raise UserError(f"{names[1]}: target y, x = ({yg}, {xg}) must be twice the approximant's "
                        f"({ya}, {xa}) of {names[0]}, i.e. ({2 * ya}, {2 * xa})")


def _stats(v: torch.Tensor, name: str) -> tuple[float, float]:
    mean, std = float(v.double().mean()), float(v.double().std())
    if not np.isfinite(std) or std <= 1e-12 * max(1.0, abs(mean)):
        raise UserError(f"{name}: /volume is constant (or nearly): cannot normalise it for training")
    return mean, std


@dataclass
class PatchPairs:
    """Normalised volumes and the patch corners of the training and validation bands.

    ``approx``: ``(Z, Y, X)``; ``target``: ``(Z, 2Y, 2X)``; ``corners`` (training) and
    ``val_corners``: ``(n, 2)`` top-left ``(y, x)`` on the approximant grid, the training ones in
    ``x < x_val``, the validation ones in ``[x_val, x_split)``; ``patch``: window in y and x
    (target windows are 2x).
    """

    approx: torch.Tensor
    target: torch.Tensor
    corners: np.ndarray
    val_corners: np.ndarray
    patch: int
    x_val: int
    x_split: int
    norm: dict[str, float]

    def batch(self, idx, flips: torch.Tensor | None = None, val: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Training (or, with ``val``, validation) patches ``idx`` as ``(B, 1, Z, p, p)`` and
        ``(B, 1, Z, 2p, 2p)``; ``flips[i]`` = (flip y, flip x)."""
        p = self.patch
        corners = self.val_corners if val else self.corners
        xs, ys = [], []
        for j, i in enumerate(idx):
            cy, cx = (int(c) for c in corners[i])
            a = self.approx[:, cy:cy + p, cx:cx + p]
            g = self.target[:, 2 * cy:2 * cy + 2 * p, 2 * cx:2 * cx + 2 * p]
            if flips is not None:
                dims = [d for d, f in zip((1, 2), flips[j].tolist()) if f]
                if dims:
                    a, g = torch.flip(a, dims), torch.flip(g, dims)
            xs.append(a)
            ys.append(g)
        return torch.stack(xs)[:, None], torch.stack(ys)[:, None]


def prepare_pairs(approximant: Volume, target: Volume, patch: int, overlap: float, train_fraction: float,
                  val_fraction: float = 0.0, names: tuple[str, str] = ("approximant", "target")
                  ) -> tuple[PatchPairs, list[str]]:
    """Check, resample and normalise a pair; cut the training and validation bands into
    overlapping patches (:mod:`rapidtomo.train.split`).

    Returns the pairs and notes (log lines, e.g. the z resampling). Raises :class:`UserError`
    when the volumes do not pair or the training part is too small.
    """
    check_pair(approximant.shape, target.shape, names)
    za, ya, xa = approximant.shape
    zg = target.shape[0]
    notes = []
    a = torch.as_tensor(np.asarray(approximant.data, dtype=np.float32))
    if za != zg:
        notes.append(f"{names[0]}: resampled along z from {za} to the target's {zg} slices (linear)")
        log.warning(notes[-1])
        a = resample_z(a, zg)
    g = torch.as_tensor(np.asarray(target.data, dtype=np.float32))
    xs = split_index(xa, train_fraction)
    if ya < patch or xs < patch:
        raise UserError(f"{names[0]}: the training part (y = {ya}, x < {xs} of {xa}) is smaller than one "
                        f"{patch}×{patch} patch; use a smaller patch or a larger train_fraction")
    try:
        xv = validation_index(xs, patch, val_fraction)
    except ValueError as e:
        raise UserError(f"{names[0]}: {e}") from None
    a_mean, a_std = _stats(a, names[0])
    g_mean, g_std = _stats(g[..., : 2 * xv], names[1])
    ys = patch_starts(ya, patch, overlap)
    corners = np.array([(y, x) for y in ys for x in patch_starts(xv, patch, overlap)], dtype=np.int64)
    val_corners = np.array([(y, xv + x) for y in ys for x in patch_starts(xs - xv, patch, overlap)],
                           dtype=np.int64).reshape(-1, 2)
    norm = {"input_mean": a_mean, "input_std": a_std, "target_mean": g_mean, "target_std": g_std}
    return PatchPairs((a - a_mean) / a_std, (g - g_mean) / g_std, corners, val_corners, patch, xv, xs, norm), notes

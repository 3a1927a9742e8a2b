"""Training pairs: checks, z resampling, per-volume normalisation and patch extraction.

The approximant ``A`` is ``(Za, Y, X)``, the target (golden standard) ``G`` is ``(Zg, 2Y, 2X)``.
When ``Za ≠ Zg``, ``A`` is resampled along z to ``Zg`` by linear interpolation (cell-centred:
both grids span the same thickness). Normalisation is per volume, ``(v − mean)/std``: an input's
statistics over the whole input (it is measured everywhere), ``G``'s over the training band only
(x < x_val), so nothing of the validation or held-out target enters training. Further inputs on
``G``'s grid (the reduced-angle SART or FBP, ``(Z, 2Y, 2X)``) are cut into patches on the same
regions as the target.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..io import Volume
from ..nn.unet import COARSE_INPUTS
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

    ``coarse``: ``(Cc, Z, Y, X)``, the inputs on the approximant's grid (the approximant, or none:
    ``Cc = 0``); ``fine``: ``(Cf, Z, 2Y, 2X)``, the inputs on the target's grid (the SART/FBP
    baselines, or none); ``target``: ``(Z, 2Y, 2X)``; ``corners`` (training) and ``val_corners``:
    ``(n, 2)`` top-left ``(y, x)`` on the approximant grid, the training ones in ``x < x_val``, the
    validation ones in ``[x_val, x_split)``; ``patch``: window in y and x (fine and target windows
    are 2x, on the same region); ``norm``: ``{input}_mean``, ``{input}_std`` per input and
    ``target_mean``, ``target_std``.
    """

    coarse: torch.Tensor
    fine: torch.Tensor
    target: torch.Tensor
    corners: np.ndarray
    val_corners: np.ndarray
    patch: int
    x_val: int
    x_split: int
    norm: dict[str, float]

    def batch(self, idx, flips: torch.Tensor | None = None, val: bool = False
              ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Training (or, with ``val``, validation) patches ``idx``: the network's inputs
        ``(coarse (B, Cc, Z, p, p), fine (B, Cf, Z, 2p, 2p))`` and the target ``(B, 1, Z, 2p, 2p)``;
        ``flips[i]`` = (flip y, flip x), the same for every volume."""
        p = self.patch
        corners = self.val_corners if val else self.corners
        cs, fs, ys = [], [], []
        for j, i in enumerate(idx):
            cy, cx = (int(c) for c in corners[i])
            c = self.coarse[..., cy:cy + p, cx:cx + p]
            f = self.fine[..., 2 * cy:2 * cy + 2 * p, 2 * cx:2 * cx + 2 * p]
            g = self.target[None, :, 2 * cy:2 * cy + 2 * p, 2 * cx:2 * cx + 2 * p]
            if flips is not None:
                dims = [d for d, f_ in zip((2, 3), flips[j].tolist()) if f_]
                if dims:
                    c, f, g = torch.flip(c, dims), torch.flip(f, dims), torch.flip(g, dims)
            cs.append(c)
            fs.append(f)
            ys.append(g)
        return (torch.stack(cs), torch.stack(fs)), torch.stack(ys)


def prepare_pairs(approximant: Volume, target: Volume, patch: int, overlap: float, train_fraction: float,
                  val_fraction: float = 0.0, names: tuple[str, str] = ("approximant", "target"),
                  inputs: Sequence[str] = ("approximant",), baselines: dict[str, Volume] | None = None,
                  baseline_names: dict[str, str] | None = None) -> tuple[PatchPairs, list[str]]:
    """Check, resample and normalise the network's inputs and the target; cut the training and
    validation bands into overlapping patches (:mod:`rapidtomo.train.split`).

    ``approximant`` gives the grid and the split even when it is not among ``inputs``; the other
    inputs (``sart``, ``fbp``) come from ``baselines`` and must be on the target's y, x grid (they
    are resampled along z to the target's slices like the approximant). Every input is
    normalised by its own whole-volume statistics (it is measured everywhere).

    Returns the pairs and notes (log lines, e.g. the z resampling). Raises :class:`UserError`
    when the volumes do not pair, an input is missing, or the training part is too small.
    """
    check_pair(approximant.shape, target.shape, names)
    za, ya, xa = approximant.shape
    zg = target.shape[0]
    notes = []
    vols = {"approximant": (approximant, names[0])}
    for name, v in (baselines or {}).items():
        vols[name] = (v, (baseline_names or {}).get(name, name))
    missing = [i for i in inputs if i not in vols]
    if missing:
        raise UserError(f"[train] inputs {list(inputs)} need the {', '.join(missing)} volume(s): give "
                        f"{' '.join('--' + m + ' FILE' for m in missing)}")
    tensors = {}
    for name in inputs:
        v, vname = vols[name]
        if name != "approximant":
            check_fine(v.shape, target.shape, vname, names[1])
        t = torch.as_tensor(np.asarray(v.data, dtype=np.float32))
        if t.shape[0] != zg:
            notes.append(f"{vname}: resampled along z from {t.shape[0]} to the target's {zg} slices (linear)")
            log.warning(notes[-1])
            t = resample_z(t, zg)
        tensors[name] = t
    g = torch.as_tensor(np.asarray(target.data, dtype=np.float32))
    xs = split_index(xa, train_fraction)
    if ya < patch or xs < patch:
        raise UserError(f"{names[0]}: the training part (y = {ya}, x < {xs} of {xa}) is smaller than one "
                        f"{patch}×{patch} patch; use a smaller patch or a larger train_fraction")
    try:
        xv = validation_index(xs, patch, val_fraction)
    except ValueError as e:
        raise UserError(f"{names[0]}: {e}") from None
    norm = {}
    for name, t in tensors.items():
        mean, std = _stats(t, vols[name][1])
        norm[f"{name}_mean"], norm[f"{name}_std"] = mean, std
        tensors[name] = (t - mean) / std
    g_mean, g_std = _stats(g[..., : 2 * xv], names[1])
    norm.update(target_mean=g_mean, target_std=g_std)
    ys = patch_starts(ya, patch, overlap)
    corners = np.array([(y, x) for y in ys for x in patch_starts(xv, patch, overlap)], dtype=np.int64)
    val_corners = np.array([(y, xv + x) for y in ys for x in patch_starts(xs - xv, patch, overlap)],
                           dtype=np.int64).reshape(-1, 2)
    coarse = stack_inputs([tensors[i] for i in inputs if i in COARSE_INPUTS], (zg, ya, xa))
    fine = stack_inputs([tensors[i] for i in inputs if i not in COARSE_INPUTS], (zg, 2 * ya, 2 * xa))
    return PatchPairs(coarse, fine, (g - g_mean) / g_std, corners, val_corners, patch, xv, xs, norm), notes


def stack_inputs(volumes: list[torch.Tensor], shape: tuple[int, int, int]) -> torch.Tensor:
    """``(C, Z, Y, X)`` from C volumes of ``shape``; ``(0, Z, Y, X)`` for none."""
    return torch.stack(volumes) if volumes else torch.zeros((0, *shape))


def check_fine(shape: tuple[int, ...], target_shape: tuple[int, ...], name: str, target_name: str) -> None:
    """Raise a one-line :class:`UserError` unless a full-resolution input has the target's y and x."""
    if len(shape) != 3 or tuple(shape[1:]) != tuple(target_shape[1:]):
        raise UserError(f"{name}: shape {tuple(shape)} must be (z, {target_shape[1]}, {target_shape[2]}), the y, x "
                        f"of the target {target_name} (the reduced-angle baseline on the golden standard's grid)")

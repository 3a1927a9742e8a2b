"""Patches with 50 % overlap and the train/validation/held-out split along x (paper §4.4).

The approximant grid is ``(Z, Y, X)``, the target grid ``(Z, 2Y, 2X)``. Along x (approximant
grid; twice the index on the target grid)::

    [0, x_val)          training patches
    [x_val, x_split)    validation patches: a band that no training patch overlaps
    [x_split, X)        the held-out test part

No patch crosses a boundary, so validation and test voxels never enter a training patch.
"""
from __future__ import annotations

from typing import Protocol


class _SplitSettings(Protocol):
    train_fraction: float


def patch_starts(n: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Start indices of ``patch``-long windows covering ``[0, n)`` with the given overlap fraction.

    Steps of ``max(1, round(patch·(1 − overlap)))``; a last window is aligned to the end so the
    whole range is covered. Empty when ``n < patch``.
    """
    if patch < 1 or not 0 <= overlap < 1:
        raise ValueError(f"need patch ≥ 1 and 0 ≤ overlap < 1, got {patch}, {overlap}")
    if n < patch:
        return []
    step = max(1, round(patch * (1 - overlap)))
    starts = list(range(0, n - patch + 1, step))
    if starts[-1] != n - patch:
        starts.append(n - patch)
    return starts


def split_index(width_approx: int, train_fraction: float) -> int:
    """First held-out x index on the approximant grid: ``floor(train_fraction · X)``."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    return int(train_fraction * width_approx)


def validation_index(x_split: int, patch: int, val_fraction: float) -> int:
    """First validation column ``x_val``: the band ``[x_val, x_split)`` is
    ``max(patch, round(val_fraction · x_split))`` wide (at least one patch), or empty for
    ``val_fraction = 0``. Raises ``ValueError`` when no training patch would be left."""
    if val_fraction <= 0:
        return x_split
    x_val = x_split - max(patch, round(val_fraction * x_split))
    if x_val < patch:
        raise ValueError(f"the training part (x < {x_split}) cannot hold a {patch}-wide training patch and a "
                         f"validation band of {x_split - x_val}; use a smaller patch or val_fraction, or a "
                         f"larger train_fraction")
    return x_val


def heldout_region(shape_approx: tuple[int, int, int], settings: _SplitSettings) -> tuple[slice, slice]:
    """The held-out test part along x: ``(slice on the approximant's x, slice on the target's x)``.

    ``shape_approx`` is the approximant's ``(Z, Y, X)``; ``settings`` needs ``train_fraction``
    (a :class:`~rapidtomo.train.TrainSettings`). Restrict metrics to ``volume[..., sl]``.
    """
    x = shape_approx[-1]
    xs = split_index(x, settings.train_fraction)
    return slice(xs, x), slice(2 * xs, 2 * x)

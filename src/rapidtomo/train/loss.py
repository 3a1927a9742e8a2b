"""Loss and learning-rate schedule of the paper (§4.4): NPCC (Eq. 11) and the polynomial decay (Eq. 12)."""
from __future__ import annotations

import torch


def npcc(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Negative Pearson correlation coefficient −PCC (Eq. 11), per sample, averaged over the batch.

    ``pred`` and ``target``: ``(B, ...)`` of equal shape; the PCC of each sample runs over all of
    its voxels. Returns a scalar in [−1, 1]; −1 for identical (non-constant) samples.
    """
    if pred.shape != target.shape:
        raise ValueError(f"npcc: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    p = pred.flatten(1).float()
    t = target.flatten(1).float()
    p = p - p.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    den = torch.sqrt((p * p).sum(dim=1) * (t * t).sum(dim=1)).clamp_min(eps)
    return -((p * t).sum(dim=1) / den).mean()


def poly_lr(step: int, total_steps: int, lr_start: float = 2e-4, lr_end: float = 5e-5, power: float = 0.5) -> float:
    """Learning rate at ``step``: ``(lr0 − lr_end)·(1 − min(step, T)/T)^p + lr_end`` (Eq. 12).

    The paper prints Eq. 12 without the trailing ``+ lr_end``, which would end at 0 rather than
    at its stated lr(end) = 5e-5; we use TensorFlow's ``PolynomialDecay`` form, which starts at
    lr0 and ends at lr_end. After ``T`` steps the rate stays at ``lr_end``.
    """
    frac = 1.0 - min(step, total_steps) / max(total_steps, 1)
    return (lr_start - lr_end) * frac ** power + lr_end

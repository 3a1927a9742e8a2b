"""Choosing the torch device: CUDA when present, else CPU; always overridable."""
from __future__ import annotations

import torch

from .errors import UserError


def pick_device(name: str | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA if available, else CPU; otherwise the named device."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r}: not a torch device name (try cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r}: CUDA is not available on this machine")
    return dev

"""Progress bars with rate and ETA for every long step (tqdm, to stderr)."""
from __future__ import annotations

import os
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             leave: bool = True) -> Iterable[T]:
    """Wrap an iterable in a progress bar; ``RAPIDTOMO_QUIET=1`` silences it (tests)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True,
                disable=os.environ.get("RAPIDTOMO_QUIET") == "1")

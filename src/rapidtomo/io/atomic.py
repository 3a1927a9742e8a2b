"""Atomic writes: write to a temporary file (or folder) beside the target, then rename over it.

A crash or a bad input never leaves a half-written output, and an existing file stays intact
until the new one is complete.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path in the target's folder; on success rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` (e.g. a zarr store); on success it replaces ``path``.

    An existing ``path`` is moved aside, the new folder renamed into place, then the old one
    deleted; on error the temporary folder is deleted and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(src: str | Path, path: str | Path) -> None:
    """Rename the complete folder ``src`` to ``path`` (same file system): an existing ``path`` is
    moved aside first and deleted once ``src`` is in place."""
    path = Path(path)
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(src, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

"""Settings and timings written next to a stage's outputs, so a run directory tells its story."""
from __future__ import annotations

import json
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from . import __version__
from .io.atomic import atomic_path


class Timer:
    """Named timings: ``with timer("step"): ...``; ``timer.seconds`` maps name → wall-clock s,
    ``timer.cpu_seconds`` name → CPU s of this process (all its threads)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.process_time() - c0


def provenance(settings: dict[str, Any] | None = None, sources: list[str] | None = None) -> dict[str, Any]:
    """Attributes that every output file carries: tool version, settings, source files, host."""
    return {
        "tool": "rapidtomo",
        "tool_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "settings": json.dumps(settings or {}, default=str),
        "sources": json.dumps([str(s) for s in (sources or [])]),
    }


def file_stamp(path: str | Path) -> str:
    """``PATH:SIZE:MTIME_NS`` of a file, or for a folder (a zarr store) of its newest file and its
    total size: changes when the content is rewritten."""
    path = Path(path).resolve()
    st = path.stat()
    if path.is_dir():
        stats = [p.stat() for p in path.rglob("*") if p.is_file()]
        return f"{path}:{sum(s.st_size for s in stats)}:{max((s.st_mtime_ns for s in stats), default=st.st_mtime_ns)}"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def write_run_info(path: str | Path, stage: str, settings: dict[str, Any],
                   timings: dict[str, float], extra: dict[str, Any] | None = None) -> Path:
    """Write ``<path>`` (JSON): stage name, settings, timings in seconds, version, and extras."""
    path = Path(path)
    info = {"stage": stage, "tool_version": __version__, "settings": settings,
            "timings_s": {k: round(v, 4) for k, v in timings.items()}, **(extra or {})}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2, default=str))
    return path

"""The acquisition- and computation-time table (the paper's Table 1).

Acquisition time is modelled as time per angle × number of angles × volume fraction (the part of
the scanned field of view that the compared volume covers); the reference method (the golden
standard) uses the nominal angles, every other method the reduced ones. Computation times are
measured. Ratios are reference time / method time (×16 means 16 times faster).
"""
from __future__ import annotations

import math

# the paper's values: 129 s per angle for a 30 × 100 µm² field of view, 349 nominal angles, 21 reduced
PAPER_TIME_PER_ANGLE_S = 129.0


def acquisition_time_table(computation_s: dict[str, float], n_nominal: int, n_reduced: int,
                           time_per_angle_s: float = PAPER_TIME_PER_ANGLE_S, volume_fraction: float = 1.0,
                           reference: str = "golden") -> dict[str, dict[str, float]]:
    """``{method: {acquisition_s, computation_s, total_s, acquisition_ratio, computation_ratio,
    total_ratio}}`` for each method in ``computation_s`` (measured seconds; ``reference`` among them).

    The reference method is acquired with ``n_nominal`` angles, the others with ``n_reduced``.
    """
    if reference not in computation_s:
        raise ValueError(f"the reference method {reference!r} has no computation time")
    if n_nominal < 1 or n_reduced < 1 or time_per_angle_s < 0 or not 0 < volume_fraction <= 1:
        raise ValueError("need n_nominal, n_reduced ≥ 1, time_per_angle_s ≥ 0 and 0 < volume_fraction ≤ 1")
    rows = {}
    for method, comp in computation_s.items():
        n = n_nominal if method == reference else n_reduced
        acq = time_per_angle_s * n * volume_fraction
        rows[method] = {"angles": n, "acquisition_s": acq, "computation_s": float(comp),
                        "total_s": acq + float(comp)}
    ref = rows[reference]
    for row in rows.values():
        for key in ("acquisition", "computation", "total"):
            den = row[f"{key}_s"]
            row[f"{key}_ratio"] = ref[f"{key}_s"] / den if den > 0 else math.inf
    return rows


def computation_from_stages(stage_seconds: dict[str, float]) -> dict[str, float]:
    """Computation time per method from a run's ``timings.json`` (pipeline stage → seconds).

    golden ← ``golden``; RAPID ← ``approximant`` + ``predict`` (training is a one-off for the
    sample, as in the paper); FBP, SART ← their stages. Methods whose stages are missing are left out.
    """
    s = stage_seconds
    out = {}
    if "golden" in s:
        out["golden"] = s["golden"]
    if "approximant" in s and "predict" in s:
        out["rapid"] = s["approximant"] + s["predict"]
    for m in ("fbp", "sart"):
        if m in s:
            out[m] = s[m]
    return out


def format_time_table(rows: dict[str, dict[str, float]], unit_s: float = 3600.0, unit: str = "h") -> str:
    """Plain-text Table 1: rows acquisition / computation / total, a time and a ratio column per method."""
    methods = list(rows)
    head = f"{'':<18}" + "".join(f"{m + ' (' + unit + ')':>16}{'ratio':>8}" for m in methods)
    lines = [head]
    for key in ("acquisition", "computation", "total"):
        cells = "".join(f"{rows[m][key + '_s'] / unit_s:>16.4g}{'x%.3g' % rows[m][key + '_ratio']:>8}" for m in methods)
        lines.append(f"{key:<18}{cells}")
    return "\n".join(lines)

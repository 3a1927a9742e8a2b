"""Layouts (GDSII/OASIS) plus a process stack → 3D phase, attenuation and label volumes.

Each drawn layer is the union of its polygons, clipped to the window, extruded between the
stack's heights. A voxel's content is exact: area fractions in x–y (:mod:`.raster`) times the
share of the voxel's height inside each layer; the rest of the voxel is the dielectric at that
height (fill, dielectric sheets, trench oxide) or the substrate below 0. The voxel's phase and
attenuation are the volume-weighted mix of its materials' 2π·(δ, β)·dz/λ; its label is the
material with the largest share.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import gdstk
import h5py
import numpy as np

from ...errors import UserError
from ...io import Volume, write_volume
from ...io.atomic import atomic_path
from ...physics.geometry import wavelength_m
from ...progress import progress
from ..materials import LABELS
from .raster import coverage
from .stack import Stack

UM = 1e-6


@dataclass
class LayoutSample:
    """A rendered sample: ``volume`` (phase per voxel, attenuation), ``labels`` (z, y, x) uint8 material ids."""

    volume: Volume
    labels: np.ndarray
    label_names: list[str]


@dataclass
class _Piece:
    material: str
    bottom_m: float
    top_m: float
    cov: np.ndarray  # (ny, nx) area fraction


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence gdstk's own C-level messages so that a bad file gives one line (ours)."""
    fd = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def read_layout(path: str | Path) -> gdstk.Library:
    """A GDSII or OASIS file (told apart by their first bytes) as a ``gdstk.Library``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: layout file not found")
    head = path.open("rb").read(16)
    try:
        with _quiet_stderr():
            if head.startswith(b"%SEMI-OASIS"):
                return gdstk.read_oas(path)
            if head[:4] == b"\x00\x06\x00\x02":
                return gdstk.read_gds(path)
    except (OSError, RuntimeError) as e:
        raise UserError(f"{path}: cannot read the layout: {e}") from None
    raise UserError(f"{path}: not a GDSII or OASIS file")


def top_cell(lib: gdstk.Library, name: str | None, source: str) -> gdstk.Cell:
    """The cell ``name``, or the library's only top-level cell."""
    if name is not None:
        for c in lib.cells:
            if c.name == name:
                return c
        raise UserError(f"{source}: no cell named {name!r} (cells: {', '.join(c.name for c in lib.cells[:10])})")
    tops = lib.top_level()
    if len(tops) != 1:
        names = ", ".join(c.name for c in tops[:10]) or "none"
        raise UserError(f"{source}: {len(tops)} top-level cells ({names}); choose one with --cell")
    return tops[0]


def _level_polygons(cell: gdstk.Cell, stack: Stack, window: gdstk.Polygon, precision: float,
                    source: str) -> dict[str, list[gdstk.Polygon]]:
    """Flattened polygons of each stack level, unioned and clipped to ``window`` (layout units)."""
    by_gds: dict[tuple[int, int], list[gdstk.Polygon]] = {}
    for p in cell.get_polygons(apply_repetitions=True, include_paths=True):
        by_gds.setdefault((p.layer, p.datatype), []).append(p)
    unknown = sorted(g for g in by_gds if stack.level_of(g) is None and not stack.ignored(g))
    if unknown:
        listed = ", ".join(f"{a}/{b} ({len(by_gds[(a, b)])} shapes)" for a, b in unknown[:5])
        raise UserError(f"{source}: layer {listed} not in stack {stack.name!r} "
                        f"(map it with a [[layer]] or list it under 'ignore')")
    out = {}
    for lv in stack.levels:
        polys = [p for g in lv.gds for p in by_gds.get(g, [])]
        out[lv.name] = gdstk.boolean(polys, window, "and", precision) if polys else []
    return out


def _pieces(stack: Stack, polys: dict[str, list[gdstk.Polygon]], unit_m: float, precision: float,
            grid: tuple[tuple[float, float], tuple[float, float], tuple[int, int]]) -> list[_Piece]:
    """Extruded layers in metres, split in height where they change.

    Where a layer named in another's ``over`` shares heights with it, it gives way; a layer with a
    liner is liner in its bottom ``thickness`` and, above, liner in a rim of that width around a core.
    """
    pieces = []

    def add(material: str, shape: list[gdstk.Polygon], z0: float, z1: float) -> None:
        if shape:
            cov = coverage([p.points * unit_m for p in shape], *grid, precision=precision * unit_m)
            pieces.append(_Piece(material, z0, z1, cov.astype(np.float32)))

    for lv in progress(stack.levels, desc="rasterise layers", unit="layer"):
        if not polys[lv.name]:
            continue
        winners = [w for w in stack.levels if lv.name in w.over and w.bottom_m < lv.top_m and lv.bottom_m < w.top_m]
        cuts = {lv.bottom_m, lv.top_m} | {h for w in winners for h in (w.bottom_m, w.top_m)}
        if lv.liner:
            cuts.add(lv.bottom_m + lv.liner[1])
        cuts = sorted(h for h in cuts if lv.bottom_m <= h <= lv.top_m)
        for z0, z1 in zip(cuts, cuts[1:]):
            over = [p for w in winners if w.bottom_m < z1 and z0 < w.top_m for p in polys[w.name]]
            shape = gdstk.boolean(polys[lv.name], over, "not", precision) if over else polys[lv.name]
            if lv.liner is None:
                add(lv.material, shape, z0, z1)
            elif z1 <= lv.bottom_m + lv.liner[1] * (1 + 1e-9):
                add(lv.liner[0], shape, z0, z1)
            else:
                core = gdstk.offset(shape, -lv.liner[1] / unit_m, "miter", 2, precision)
                add(lv.liner[0], gdstk.boolean(shape, core, "not", precision), z0, z1)
                add(lv.material, core, z0, z1)
    return pieces


def label_names(stack: Stack) -> list[str]:
    """Label id → material name: the synthetic IC's ids first (air, SiO2, Si, Cu, W), then the stack's."""
    names = list(LABELS)
    names += [m for m in stack.materials if m not in names]
    return names


def render_layout(source: str | Path | gdstk.Library, stack: Stack, voxel_size_m: tuple[float, float, float],
                  energy_kev: float = 8.8, cell: str | None = None,
                  window_um: tuple[float, float, float, float] | None = None,
                  substrate_thickness_m: float | None = None) -> LayoutSample:
    """Render a layout (file or library) with ``stack`` to a ``(z, y, x)`` sample.

    ``voxel_size_m`` = (dz, dy, dx) in metres; ``window_um`` = (x0, y0, x1, y1) in µm, layout
    coordinates (default: the cell's bounding box). z index 0 is the top of the stack, the last
    index is in the substrate (``substrate_thickness_m`` of Si, default the stack's; the bottom
    voxel is all substrate where the grid runs past it); y and x indices grow with the layout's y, x.
    """
    if isinstance(source, gdstk.Library):
        lib, name = source, source.name
        sha = ""
    else:
        lib, name = read_layout(source), str(source)
        sha = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    top = top_cell(lib, cell, name)
    unit_m = lib.unit
    precision = lib.precision / lib.unit
    dz, dy, dx = (float(v) for v in voxel_size_m)
    if window_um is None:
        bb = top.bounding_box()
        if bb is None:
            raise UserError(f"{name}: cell {top.name!r} is empty")
        (wx0, wy0), (wx1, wy1) = bb
    else:
        wx0, wy0, wx1, wy1 = (v * UM / unit_m for v in window_um)
        if not (wx1 > wx0 and wy1 > wy0):
            raise UserError(f"{name}: window {window_um} must have x1 > x0 and y1 > y0")
    nx = math.ceil((wx1 - wx0) * unit_m / dx - 1e-6)
    ny = math.ceil((wy1 - wy0) * unit_m / dy - 1e-6)
    nz = math.ceil((stack.top_m + (stack.substrate_thickness_m if substrate_thickness_m is None
                                   else substrate_thickness_m)) / dz - 1e-6)
    need = nz * ny * nx * 9 + 4 * ny * nx * 4 * len(stack.levels)  # phase, attenuation, labels; x-y maps
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.8 * have:
        raise UserError(f"{name}: {nz} x {ny} x {nx} voxels need ~{need / 2**30:.0f} GiB, more than this machine's "
                        f"{have / 2**30:.0f} GiB: use larger voxels or a smaller window")
    # clip a little outside the grid so that a liner is not drawn along the window's edges
    m = (max([lv.liner[1] for lv in stack.levels if lv.liner] + [0.0]) + max(dx, dy)) / unit_m
    window = gdstk.rectangle((wx0 - m, wy0 - m), (wx0 + nx * dx / unit_m + m, wy0 + ny * dy / unit_m + m))
    grid = ((wx0 * unit_m, wy0 * unit_m), (dx, dy), (ny, nx))
    polys = _level_polygons(top, stack, window, precision, name)
    pieces = _pieces(stack, polys, unit_m, precision, grid)

    top_m = stack.top_m
    names = label_names(stack)
    k = 2 * math.pi * dz / wavelength_m(energy_kev)
    consts = stack.constants(energy_kev)
    phi_of = {m: k * d for m, (d, _) in consts.items()}
    mu_of = {m: k * b for m, (_, b) in consts.items()}
    sheets = [(s.bottom_m, s.top_m, s.material) for s in stack.sheets]

    def fill_at(h: float) -> str:
        if h < 0:
            return stack.substrate
        return next((m for b, t, m in sheets if b <= h < t), stack.fill)

    breaks = sorted({0.0} | {h for p in pieces for h in (p.bottom_m, p.top_m)} | {h for s in sheets for h in s[:2]})
    phase = np.empty((nz, ny, nx), np.float32)
    att = np.empty((nz, ny, nx), np.float32)
    labels = np.empty((nz, ny, nx), np.uint8)
    prev_key = None
    for iz in progress(range(nz), desc="rasterise z", unit="slice"):
        h1 = top_m - iz * dz
        h0 = h1 - dz
        hs = [h0] + [b for b in breaks if h0 < b < h1] + [h1]
        parts = []
        for a, b in zip(hs, hs[1:]):
            mid = 0.5 * (a + b)
            parts.append((round((b - a) / dz, 12), fill_at(mid),
                          tuple(i for i, p in enumerate(pieces) if p.bottom_m <= mid < p.top_m)))
        key = tuple(parts)
        if key == prev_key:
            phase[iz], att[iz], labels[iz] = phase[iz - 1], att[iz - 1], labels[iz - 1]
            continue
        prev_key = key
        frac: dict[str, np.ndarray] = {}
        for w, fill, active in parts:
            rest = np.ones((ny, nx))
            for i in active:
                p = pieces[i]
                frac[p.material] = frac.get(p.material, 0.0) + w * p.cov
                rest -= p.cov
            frac[fill] = frac.get(fill, 0.0) + w * np.clip(rest, 0.0, 1.0)
        mats = list(frac)
        stacked = np.broadcast_arrays(*[np.asarray(frac[m], dtype=np.float64) for m in mats])
        phase[iz] = sum(phi_of[m] * f for m, f in zip(mats, stacked))
        att[iz] = sum(mu_of[m] * f for m, f in zip(mats, stacked))
        ids = np.array([names.index(m) for m in mats], np.uint8)
        labels[iz] = ids[np.argmax(np.stack(stacked), axis=0)]

    attrs = {
        "quantity": "phase_rad_per_voxel",
        "phantom": "layout",
        "energy_kev": float(energy_kev),
        "stack": stack.name,
        "stack_source": stack.source,
        "stack_definition": stack.definition,
        "layout": name,
        "layout_sha256": sha,
        "cell": top.name,
        "window_m": [wx0 * unit_m, wy0 * unit_m, (wx0 * unit_m + nx * dx), (wy0 * unit_m + ny * dy)],
        "top_m": top_m,
        "substrate_thickness_m": nz * dz - top_m,
        "label_names": names,
        "materials": {m: {"compound": stack.materials[m][0], "density_g_cm3": stack.materials[m][1],
                          "delta": consts[m][0], "beta": consts[m][1]} for m in stack.materials},
    }
    return LayoutSample(Volume(phase, (dz, dy, dx), attrs, att), labels, names)


def write_sample(path: str | Path, sample: LayoutSample) -> Path:
    """Write ``/volume`` (phase), ``/attenuation`` and ``/labels`` (names in ``label_names``) atomically."""
    path = Path(path)
    if path.suffix == ".zarr":
        raise UserError(f"{path}: a layout sample is written as HDF5 (.h5), not zarr")
    with atomic_path(path) as tmp:
        write_volume(tmp, sample.volume)
        with h5py.File(tmp, "a") as f:
            d = f.create_dataset("labels", data=sample.labels, chunks=True)
            d.attrs["label_names"] = json.dumps(sample.label_names)
    return path

"""Chip-like blocks: random rows of standard cells, power rails, random routing on the upper metals.

A cell library is a directory of GDS files (each top-level cell one standard cell) or the name of
a library shipped with rapidtomo (``sky130_fd_sc_hd``: a few SkyWater high-density cells,
Apache-2.0, in ``rapidtomo/phantom/data``). The stack's ``[cells]`` table says which layer holds
the cells' abutment box, where the power rails run and how to route above the cells.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import gdstk
import numpy as np

from ...errors import UserError
from .render import read_layout
from .stack import Stack, _parse_gds

BUILTIN_LIBRARIES = ("sky130_fd_sc_hd",)
FILLER_WORDS = ("fill", "decap", "tap")


def library_files(spec: str | Path) -> list[Path]:
    """GDS/OASIS files of a cell library: a built-in library name or a directory."""
    if str(spec) in BUILTIN_LIBRARIES:
        root = resources.files("rapidtomo.phantom").joinpath("data", str(spec))
        return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".gds"))
    path = Path(spec)
    if not path.is_dir():
        raise UserError(f"{path}: not a directory of cell GDS files nor a built-in library "
                        f"({', '.join(BUILTIN_LIBRARIES)})")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".gds", ".gds2", ".oas"))
    if not files:
        raise UserError(f"{path}: no .gds or .oas files")
    return files


def _abutment_box(cell: gdstk.Cell, boundary: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray] | None:
    if boundary is not None:
        boxes = [p.bounding_box() for p in cell.get_polygons(layer=boundary[0], datatype=boundary[1])]
        if boxes:
            return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)
    bb = cell.bounding_box()
    return None if bb is None else (np.asarray(bb[0]), np.asarray(bb[1]))


def load_cells(spec: str | Path, stack: Stack) -> list[tuple[gdstk.Cell, np.ndarray, np.ndarray]]:
    """The library's cells that share the most common height: ``(cell, lower-left, upper-right)`` in µm."""
    boundary = _parse_gds(stack.cells.boundary) if stack.cells and stack.cells.boundary else None
    cells = []
    for f in library_files(spec):
        lib = read_layout(f)
        scale = lib.unit / 1e-6
        for c in lib.top_level():
            box = _abutment_box(c, boundary)
            if box is None:
                continue
            if scale != 1:
                c = c.copy(c.name, magnification=scale)
                box = (box[0] * scale, box[1] * scale)
            cells.append((c, box[0], box[1]))
    if not cells:
        raise UserError(f"{spec}: no cells with any shapes")
    heights = np.round([hi[1] - lo[1] for _, lo, hi in cells], 6)
    values, counts = np.unique(heights, return_counts=True)
    h = values[np.argmax(counts)]
    return [c for c, hh in zip(cells, heights) if hh == h]


def row_height_um(library: str | Path, stack: Stack) -> float:
    """Height (µm) of the library's rows: the common height of its cells."""
    _, lo, hi = load_cells(library, stack)[0]
    return float(hi[1] - lo[1])


def cell_block(stack: Stack, library: str | Path, *, rows: int = 4, row_width_um: float = 20.0,
               density: float = 0.8, routing_density: float = 0.5, via_probability: float = 0.3,
               seed: int = 0) -> tuple[gdstk.Library, tuple[float, float, float, float]]:
    """A gdstk library (µm units) whose top cell ``block`` holds ``rows`` rows of random cells, and its extent.

    The extent (x0, y0, x1, y1) in µm is the rows' abutment area, the natural window to render.

    Rows are ``row_width_um`` wide; every other row is mirrored about x so that neighbours share
    a rail. ``density`` is the share of a row taken by logic cells (the rest gets filler cells,
    those named fill/decap/tap, when the library has them). On each routing layer of the stack a
    track carries wire with probability ``routing_density``, in segments of 2–12 pitches; a
    segment end gets a via down to the layer below with probability ``via_probability``.
    """
    if stack.cells is None:
        raise UserError(f"{stack.source}: this stack has no [cells] table (rails and routing for cell blocks)")
    if rows < 1 or row_width_um <= 0 or not (0 <= density <= 1) or not (0 <= routing_density <= 1) \
            or not (0 <= via_probability <= 1):
        raise UserError("cell block: rows >= 1, row_width_um > 0 and densities, via_probability in [0, 1]")
    rng = np.random.default_rng(seed)
    cells = load_cells(library, stack)
    fillers = [c for c in cells if any(w in c[0].name.lower() for w in FILLER_WORDS)]
    logic = [c for c in cells if c not in fillers] or cells
    lib = gdstk.Library(f"cell block of {library}")
    top = lib.new_cell("block")
    used = {}
    height = cells[0][2][1] - cells[0][1][1]
    for r in range(rows):
        x = 0.0
        y = r * height
        while True:
            pool = logic if (rng.random() < density or not fillers) else fillers
            cell, lo, hi = pool[rng.integers(len(pool))]
            w = hi[0] - lo[0]
            if x + w > row_width_um + 1e-9:
                narrow = [c for c in fillers if c[2][0] - c[1][0] <= row_width_um - x + 1e-9]
                if not narrow:
                    break
                cell, lo, hi = min(narrow, key=lambda c: c[2][0] - c[1][0])
                w = hi[0] - lo[0]
            used[cell.name] = cell
            if r % 2:  # mirrored about x: cell y in [lo, hi] → row y in [y + height, y]
                top.add(gdstk.Reference(cell, (x - lo[0], y + hi[1]), x_reflection=True))
            else:
                top.add(gdstk.Reference(cell, (x - lo[0], y - lo[1])))
            x += w
    for cell in used.values():
        lib.add(cell, *cell.dependencies(True))
    xmax, ymax = row_width_um, rows * height
    if stack.cells.rail is not None:
        g = stack.level(stack.cells.rail.layer).gds[0]
        hw = stack.cells.rail.width_um / 2
        for r in range(rows + 1):
            top.add(gdstk.rectangle((0, r * height - hw), (xmax, r * height + hw), layer=g[0], datatype=g[1]))
    for spec in stack.cells.routing:
        g = stack.level(spec.layer).gds[0]
        gv = stack.level(spec.via).gds[0] if spec.via else None
        length = xmax if spec.direction == "x" else ymax
        across = ymax if spec.direction == "x" else xmax
        hw, hv = spec.width_um / 2, spec.via_size_um / 2
        for c in np.arange(spec.pitch_um / 2, across, spec.pitch_um):
            if rng.random() >= routing_density:
                continue
            s = rng.uniform(0, 2 * spec.pitch_um)
            while s < length - spec.pitch_um:
                e = min(s + rng.uniform(2, 12) * spec.pitch_um, length)
                lo, hi = ((s, c - hw), (e, c + hw)) if spec.direction == "x" else ((c - hw, s), (c + hw, e))
                top.add(gdstk.rectangle(lo, hi, layer=g[0], datatype=g[1]))
                for end in (s + hw, e - hw):
                    if gv is not None and hv > 0 and rng.random() < via_probability:
                        vx, vy = (end, c) if spec.direction == "x" else (c, end)
                        top.add(gdstk.rectangle((vx - hv, vy - hv), (vx + hv, vy + hv), layer=gv[0], datatype=gv[1]))
                s = e + rng.uniform(1, 3) * spec.pitch_um
    return lib, (0.0, 0.0, float(xmax), float(ymax))

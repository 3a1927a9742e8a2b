"""Samples from real IC designs: GDSII/OASIS layouts or standard-cell blocks, and a process stack.

``make_sample(PhantomSettings(...))`` is what ``rapidtomo phantom`` runs (docs/phantoms.md,
"Samples from layouts"); :func:`layout_block_phantom` gives a cell block of a requested size
for ``rapidtomo demo``. Needs ``gdstk`` (the ``layouts`` extra).
"""
from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field, model_validator

from ...config import Settings
from ...errors import UserError
from ...io import Volume
from ...io.atomic import atomic_path
from .cells import BUILTIN_LIBRARIES, cell_block, row_height_um
from .render import LayoutSample, render_layout, write_sample
from .stack import Stack, builtin_stacks, load_stack, parse_stack

__all__ = ["PhantomSettings", "make_sample", "layout_block_phantom", "render_layout", "write_sample",
           "LayoutSample", "cell_block", "load_stack", "parse_stack", "builtin_stacks", "Stack",
           "BUILTIN_LIBRARIES"]


BLOCK_KEYS = ("cells", "rows", "row_width_um", "density", "routing_density", "via_probability", "seed")


class PhantomSettings(Settings):
    """Settings of ``rapidtomo phantom`` (section ``[phantom]`` of a config file); lengths at the boundary in µm."""

    layout: Path | None = Field(None, description="GDSII or OASIS layout file (or give cells)")
    cells: str | None = Field(None, description="cell library for a random block: a directory of GDS files "
                              f"or a built-in one ({', '.join(BUILTIN_LIBRARIES)})")
    stack: str = Field("sky130", description=f"process stack: built-in ({', '.join(builtin_stacks())}) or a TOML file")
    cell: str | None = Field(None, description="layout cell to render (default: the only top-level cell)")
    window_um: tuple[float, float, float, float] | None = Field(
        None, description="x0 y0 x1 y1 in µm, layout coordinates (default: the layout's bounding box)")
    voxel_size_m: float | tuple[float, float, float] = Field(
        20e-9, description="voxel size (m): one value, or dz dy dx (the simulator needs dy == dx)")
    energy_kev: float = Field(8.8, gt=0, description="photon energy (keV) for δ and β")
    substrate_um: float | None = Field(None, ge=0, description="silicon below the substrate top (µm); default the stack's")
    rows: int = Field(4, ge=1, description="cell block: rows of cells")
    row_width_um: float = Field(20.0, gt=0, description="cell block: row width (µm)")
    density: float = Field(0.8, ge=0, le=1, description="cell block: share of a row in logic cells (rest filler)")
    routing_density: float = Field(0.5, ge=0, le=1, description="cell block: share of routing tracks with wire")
    via_probability: float = Field(0.3, ge=0, le=1, description="cell block: chance of a via at a wire end")
    seed: int = Field(0, description="cell block: seed of placement and routing")

    @model_validator(mode="after")
    def _check(self):
        if (self.layout is None) == (self.cells is None):
            raise ValueError("give exactly one of layout (a GDS/OASIS file) and cells (a cell library)")
        vs = self.voxel_sizes_m
        if min(vs) <= 0 or not all(math.isfinite(v) for v in vs):
            raise ValueError(f"voxel_size_m must be positive, got {self.voxel_size_m}")
        return self

    @property
    def voxel_sizes_m(self) -> tuple[float, float, float]:
        """(dz, dy, dx) in metres."""
        v = self.voxel_size_m
        return (float(v),) * 3 if isinstance(v, (int, float)) else tuple(float(x) for x in v)


def make_sample(settings: PhantomSettings, write_gds: Path | None = None) -> LayoutSample:
    """Render the settings' layout, or a random cell block (its GDS written to ``write_gds`` if given)."""
    stack = load_stack(settings.stack)
    sub = None if settings.substrate_um is None else settings.substrate_um * 1e-6
    if settings.layout is not None:
        return render_layout(settings.layout, stack, settings.voxel_sizes_m, settings.energy_kev, settings.cell,
                             settings.window_um, sub)
    lib, extent = cell_block(stack, settings.cells, rows=settings.rows, row_width_um=settings.row_width_um,
                             density=settings.density, routing_density=settings.routing_density,
                             via_probability=settings.via_probability, seed=settings.seed)
    if write_gds is not None:
        with atomic_path(write_gds) as tmp:
            lib.write_gds(tmp)
    sample = render_layout(lib, stack, settings.voxel_sizes_m, settings.energy_kev, "block",
                           settings.window_um or extent, sub)
    sample.volume.attrs["block"] = {k: getattr(settings, k) for k in BLOCK_KEYS}
    return sample


def layout_block_phantom(shape: tuple[int, int, int], voxel_size_m: float, energy_kev: float = 8.8,
                         seed: int = 0, stack: str = "sky130", cells: str = "sky130_fd_sc_hd") -> Volume:
    """A standard-cell block of exactly ``shape`` = (Z, Y, X) voxels: dy = dx = ``voxel_size_m``.

    The lateral window is Y·dx × X·dx µm of a block with enough rows and row width; dz is the
    stack's height plus 0.5 µm of substrate over Z (so dz differs from dx). Phase per voxel,
    attenuation in ``.attenuation``, labels dropped.
    """
    z, y, x = shape
    st = load_stack(stack)
    sub_m = 0.5e-6
    dz = (st.top_m + sub_m) / z
    rows = max(1, math.ceil(y * voxel_size_m * 1e6 / row_height_um(cells, st)))
    lib, _ = cell_block(st, cells, rows=rows, row_width_um=x * voxel_size_m * 1e6, seed=seed)
    window = (0.0, 0.0, x * voxel_size_m * 1e6, y * voxel_size_m * 1e6)
    sample = render_layout(lib, st, (dz, voxel_size_m, voxel_size_m), energy_kev, "block", window, sub_m)
    vol = sample.volume
    if vol.shape != tuple(shape):
        raise UserError(f"layout block: made {vol.shape} voxels instead of {tuple(shape)}")
    vol.attrs["block"] = {"cells": cells, "rows": rows, "seed": seed}
    return vol

"""Pictures of a layout, its process stack and the rendered sample (docs/phantoms.md).

``python -m rapidtomo.phantom.layout.figure docs/img`` draws a sky130 standard-cell block (seed 0,
3 rows of 12 µm) as ``layout_block.png`` (top views: cell layers, routing layers), ``stack_sky130.png`` (the stack) and
``layout_volume.png`` (an x–z cut of the phase and x–y cuts of the labels at 20 nm voxels, 8.8 keV).
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from ...physics.geometry import wavelength_m  # noqa: E402
from .cells import cell_block  # noqa: E402
from .render import LayoutSample, render_layout  # noqa: E402
from .stack import Stack, load_stack  # noqa: E402

COLOURS = {"Si": "#9e9e9e", "polySi": "#d62728", "W": "#1f77b4", "TiN": "#8c564b", "Al": "#ff7f0e",
           "Cu": "#e377c2", "Si3N4": "#bcbd22", "SiO2": "#e8f4f8", "low-k": "#c7e9c0", "SiCN": "#dadaeb",
           "Ta": "#17becf", "TaN": "#17becf"}


def draw_layout(ax, cell, stack: Stack, window_um, levels: list[str]) -> None:
    """Top view of ``cell``: the polygons of ``levels``, one colour each, in stack order."""
    polys = cell.get_polygons(apply_repetitions=True, include_paths=True)
    for i, lv in enumerate(lv for lv in stack.levels if lv.name in levels):
        verts = [p.points for p in polys if (p.layer, p.datatype) in lv.gds]
        if verts:
            ax.add_collection(PolyCollection(verts, facecolor=plt.cm.tab10(i % 10), edgecolor="k",
                                             linewidth=0.2, alpha=0.45, label=lv.name))
    ax.set_xlim(window_um[0], window_um[2])
    ax.set_ylim(window_um[1], window_um[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")


def draw_stack(ax, stack: Stack) -> None:
    """The stack as columns: each drawn level a bar from its bottom to its top height, dielectrics behind."""
    um = 1e6
    ax.add_patch(Rectangle((-0.5, -stack.substrate_thickness_m * um), len(stack.levels),
                           stack.substrate_thickness_m * um, color=COLOURS["Si"]))
    ax.add_patch(Rectangle((-0.5, 0), len(stack.levels), stack.top_m * um, color=COLOURS.get(stack.fill, "w")))
    for s in stack.sheets:
        ax.add_patch(Rectangle((-0.5, s.bottom_m * um), len(stack.levels), (s.top_m - s.bottom_m) * um,
                               color=COLOURS.get(s.material, "w")))
    for i, lv in enumerate(stack.levels):
        ax.add_patch(Rectangle((i - 0.35, lv.bottom_m * um), 0.7, (lv.top_m - lv.bottom_m) * um,
                               color=COLOURS.get(lv.material, "k")))
        ax.text(i, lv.top_m * um + 0.05, lv.name, ha="center", va="bottom", fontsize=7, rotation=90)
    mats = list(dict.fromkeys([stack.substrate, stack.fill] + [s.material for s in stack.sheets]
                              + [lv.material for lv in stack.levels]))
    ax.legend(handles=[Patch(color=COLOURS.get(m, "k"), label=m) for m in mats], fontsize=7, loc="upper left")
    ax.set_xlim(-0.5, len(stack.levels) - 0.5)
    ax.set_ylim(-stack.substrate_thickness_m * um, stack.top_m * um + 0.8)
    ax.set_xticks([])
    ax.set_ylabel("height above the substrate top (µm)")
    ax.set_title(f"stack {stack.name}")


def draw_volume(axes, sample: LayoutSample, stack: Stack, y_um: float, heights_um: list[float]) -> None:
    """Phase in an x–z cut at ``y_um`` (the stack's top up), material labels in x–y cuts at ``heights_um``.

    The phase's grey scale runs from 0.9 x SiO2 to 1.5 x Al, so that Al lines (δ only 19 % above
    SiO2's at 8.8 keV) show; W and TiN saturate.
    """
    vol = sample.volume
    dz, dy, dx = (v * 1e6 for v in vol.voxel_size_m)
    x0, y0 = (v * 1e6 for v in vol.attrs["window_m"][:2])
    z_, y_, x_ = vol.shape
    top = stack.top_m * 1e6
    k = 2 * np.pi * vol.voxel_size_m[0] / wavelength_m(vol.attrs["energy_kev"])
    consts = stack.constants(vol.attrs["energy_kev"])
    iy = int((y_um - y0) / dy)
    axes[0].imshow(vol.data[:, iy, :], cmap="gray", vmin=0.9 * k * consts["SiO2"][0], vmax=1.5 * k * consts["Al"][0],
                   aspect="auto", extent=(x0, x0 + x_ * dx, top - z_ * dz, top))
    axes[0].set_title(f"x–z cut at y = {y_um:g} µm: phase per voxel at {vol.attrs['energy_kev']:g} keV")
    axes[0].set_xlabel("x (µm)")
    axes[0].set_ylabel("height (µm)")
    names = sample.label_names
    cmap = ListedColormap([COLOURS.get(n, "w") for n in names])
    for ax, h in zip(axes[1:], heights_um):
        iz = int((top - h) / dz)
        ax.imshow(sample.labels[iz], cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, origin="lower",
                  interpolation="nearest", extent=(x0, x0 + x_ * dx, y0, y0 + y_ * dy))
        present = [names[i] for i in np.unique(sample.labels[iz])]
        ax.legend(handles=[Patch(color=COLOURS.get(m, "w"), label=m) for m in present], fontsize=7,
                  loc="upper right", framealpha=0.9)
        ax.set_title(f"x–y cut at {h:g} µm: material labels")
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stack = load_stack("sky130")
    lib, window = cell_block(stack, "sky130_fd_sc_hd", rows=3, row_width_um=12.0, seed=0)
    top = lib.top_level()[0]
    fig, axes = plt.subplots(2, 1, figsize=(9, 12))
    for ax, levels, title in ((axes[0], ["active", "poly", "licon1", "li1", "mcon", "met1"], "cells: active to met1"),
                              (axes[1], ["met1", "via", "met2", "via2", "met3", "via3", "met4", "via4", "met5"],
                               "rails and random routing: met1 to met5")):
        draw_layout(ax, top, stack, window, levels)
        ax.legend(fontsize=7, loc="upper right", ncol=3, framealpha=0.9)
        ax.set_title(f"sky130_fd_sc_hd block, 3 rows, seed 0: {title}")
    fig.tight_layout()
    fig.savefig(out / "layout_block.png", dpi=110)
    fig, ax = plt.subplots(figsize=(7, 6))
    draw_stack(ax, stack)
    fig.tight_layout()
    fig.savefig(out / "stack_sky130.png", dpi=110)
    sample = render_layout(lib, stack, (20e-9,) * 3, 8.8, "block", window)
    fig, axes = plt.subplots(3, 1, figsize=(9, 12), gridspec_kw={"height_ratios": [1.1, 1, 1]})
    draw_volume(axes, sample, stack, y_um=1.36, heights_um=[0.4, 1.55])
    fig.tight_layout()
    fig.savefig(out / "layout_volume.png", dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img")

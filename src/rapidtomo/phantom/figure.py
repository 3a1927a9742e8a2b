"""Views of a volume: x–y slices at two depths, central y–z and x–z planes (matplotlib, Agg).

``python -m rapidtomo.phantom.figure OUT.png [--shape Z Y X] [--seed N] [--voxel-nm D]`` draws
a synthetic IC with default settings.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import Volume  # noqa: E402


def _depths(volume: Volume) -> tuple[int, int]:
    """Mid-depths of the lowest and the highest metal layer if the volume lists layers, else 30 %/70 %."""
    metals = [(z0 + z1) // 2 for z0, z1, kind, *_ in json.loads(volume.attrs.get("layers", "[]")) if kind == "metal"]
    if len(metals) >= 2:
        return min(metals), max(metals)
    Z = volume.shape[0]
    return int(0.3 * (Z - 1)), int(0.7 * (Z - 1))


def save_views(volume: Volume, out_png: str | Path, title: str = "") -> Path:
    """Save x–y slices at two depths and the central y–z and x–z planes of ``volume.data (z, y, x)``.

    Planes are drawn to scale (voxel sizes), on one grey scale (0.5–99.5 percentiles).
    """
    data = np.asarray(volume.data)
    Z, Y, X = data.shape
    dz, dy, dx = volume.voxel_size_m
    vmin, vmax = np.percentile(data, [0.5, 99.5])
    z1, z2 = _depths(volume)
    views = [(data[z1], f"x–y at z = {z1}", dy / dx, X * dx), (data[z2], f"x–y at z = {z2}", dy / dx, X * dx),
             (data[:, :, X // 2].T, "y–z at x centre (z →)", dy / dz, Z * dz),
             (data[:, Y // 2], "x–z at y centre (z ↓)", dz / dx, X * dx)]
    height = max(Y * dy, Z * dz)
    widths = [w for *_, w in views]
    fig, axes = plt.subplots(1, 4, figsize=(16, max(2.5, 16 * height / sum(widths) + 0.8)),
                             gridspec_kw={"width_ratios": widths})
    for ax, (img, label, aspect, _) in zip(axes, views):
        ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return Path(out_png)


def main(argv: list[str] | None = None) -> None:
    from .ic import synthetic_ic

    p = argparse.ArgumentParser(prog="python -m rapidtomo.phantom.figure", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="PNG file to write")
    p.add_argument("--shape", type=int, nargs=3, default=(64, 128, 256), metavar=("Z", "Y", "X"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--voxel-nm", type=float, default=14.0, help="isotropic voxel size in nm")
    a = p.parse_args(argv)
    d = a.voxel_nm * 1e-9
    v = synthetic_ic(tuple(a.shape), (d, d, d), seed=a.seed)
    save_views(v, a.out, f"synthetic IC, seed {a.seed}, {tuple(a.shape)} voxels of {a.voxel_nm:g} nm: "
                         f"phase per voxel at {v.attrs['energy_kev']:g} keV")


if __name__ == "__main__":
    main()

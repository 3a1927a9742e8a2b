"""Simple analytic test objects: a few spheres or cubes of Cu and W in air, without mirror symmetry."""
from __future__ import annotations

import numpy as np

from ..io import Volume
from .ic import labels_to_volume
from .materials import LABELS


def analytic_phantom(shape, voxel_size_m=(28e-9, 28e-9, 28e-9), kind: str = "spheres", seed: int = 0,
                     energy_kev: float = 8.8) -> Volume:
    """Spheres or cubes (sizes and places drawn from ``seed``) inside the central part of the grid.

    One large object sits off-centre in +x and −z and a small one in the opposite corner, so a
    flip of x or z, or a swap of the two, is visible.
    """
    if kind not in ("spheres", "cubes"):
        raise ValueError(f"kind must be 'spheres' or 'cubes', got {kind!r}")
    Z, Y, X = (int(v) for v in shape)
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.arange(Z) / Z, np.arange(Y) / Y, np.arange(X) / X, indexing="ij")
    lab = np.zeros((Z, Y, X), np.uint8)
    objects = [((0.3, 0.5, 0.65), 0.2, "Cu"), ((0.7, 0.4, 0.3), 0.1, "W")]
    objects += [((rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)), rng.uniform(0.05, 0.1),
                 "Cu") for _ in range(2)]
    for (cz, cy, cx), r, mat in objects:
        if kind == "spheres":
            inside = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r
        else:
            inside = (abs(z - cz) <= r) & (abs(y - cy) <= r) & (abs(x - cx) <= r)
        lab[inside] = LABELS[mat]
    return labels_to_volume(lab, voxel_size_m, energy_kev, {"phantom": f"analytic_{kind}", "seed": seed})

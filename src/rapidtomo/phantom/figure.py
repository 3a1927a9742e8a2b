"""Views of a volume: x–y at two depths, y–z and x–z, one colour scale (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_views(data: np.ndarray, out_png: str | Path, title: str = "", depths: tuple[float, float] = (0.3, 0.7)) -> Path:
    """Save x–y slices at two relative depths, the central y–z and x–z planes of ``(z, y, x)`` data."""
    Z, Y, X = data.shape
    vmin, vmax = np.percentile(data, [0.5, 99.5])
    z1, z2 = (int(d * (Z - 1)) for d in depths)
    views = [(data[z1], f"x–y, z={z1}"), (data[z2], f"x–y, z={z2}"), (data[:, :, X // 2].T, "y–z (x centre)"),
             (data[:, Y // 2], "x–z (y centre)")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4), gridspec_kw={"width_ratios": [X, X, Z, X]})
    for ax, (img, label) in zip(axes, views):
        ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return Path(out_png)

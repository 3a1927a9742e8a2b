"""Tiled inference: sliding windows over y and x with overlap and smooth blending, batched,
on CPU or CUDA, writing the 2x finer output; out-of-core from and to HDF5/zarr files.

Windows span the whole z; in y and x they are the model's training patch (approximant grid)
with 50 % overlap by default, the last window aligned to the volume's end. Each window's output
(2x the window in y and x) is weighted by a separable Gaussian (σ = window/8 on each axis,
floored at 1e-3 so edges still count) and the sum is divided by the summed weights, so the
result has no seams. Where the volume fits in one window the network runs once on it.

Receptive field: a window's outputs within the network's receptive-field radius ``r``
(:func:`rapidtomo.nn.receptive_field`) of an inner window edge (one not on the volume's border)
saw zero padding where the whole volume has data. Those outputs get weight 0, up to the
``(window − step)/2`` voxels that the overlap allows (so every voxel keeps a window). Where the
overlap covers ``r``, tiled inference therefore equals whole-volume inference (for window starts
on multiples of ``2**(depth−1)``, the network's pooling grid); where it does not, a warning says
which window would.

We use our own engine rather than MONAI's ``sliding_window_inference``: that one needs the whole
input (and output) as one in-memory tensor, while volumes larger than memory must stream column
by column from a file to a file here; it would also add a large dependency for ~100 lines.

Streaming visits the windows in order of their x start; once the windows starting at ``x0`` are
done, every output column left of the next start is final and is written out, so memory holds
about ``Z × 2Y × 2·window`` output voxels (plus the input columns being read), whatever X is.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field

from .config import Settings
from .device import pick_device
from .errors import UserError
from .io import Volume, create_volume, open_volume
from .nn import LoadedModel, load_model, receptive_field
from .progress import progress
from .train.data import resample_z
from .train.split import patch_starts

log = logging.getLogger("rapidtomo.infer")


class PredictSettings(Settings):
    """Settings of ``rapidtomo predict`` (section ``[predict]``)."""

    window: int | None = Field(None, ge=4, description="window in y and x on the approximant grid "
                               "(default: the model's training patch)")
    overlap: float = Field(0.5, ge=0, lt=1, description="overlap fraction of neighbouring windows")
    blend: Literal["gaussian", "constant"] = Field("gaussian", description="window weights: gaussian "
                                                   "(σ = window/8, smooth) or constant (plain average)")
    batch_size: int = Field(8, ge=1, description="windows per network call")
    device: str = Field("auto", description="torch device: auto, cpu, cuda")
    normalise: Literal["volume", "model"] = Field("volume", description="normalise the input by its own mean/std "
                                                  "(volume) or by the training approximant's (model)")
    z_slices: int | None = Field(None, ge=1, description="output slices; default: the training target's z "
                                 "(the input is resampled along z to it)")
    amp: bool = Field(False, description="bfloat16/float16 autocast on CUDA (faster, less exact)")


def blend_weights(ny: int, nx: int, kind: str = "gaussian") -> torch.Tensor:
    """``(ny, nx)`` window weights: separable Gaussian with σ = n/8, max 1, floored at 1e-3; or ones."""
    if kind == "constant":
        return torch.ones(ny, nx)

    def g(n: int) -> torch.Tensor:
        c = (n - 1) / 2
        return torch.exp(-0.5 * ((torch.arange(n) - c) / max(n / 8, 1e-6)) ** 2)
    return (g(ny)[:, None] * g(nx)[None, :]).clamp_min(1e-3)


def sliding_window(net: Callable[[torch.Tensor], torch.Tensor], read_cols: Callable[[int, int], torch.Tensor],
                   write_cols: Callable[[int, int, torch.Tensor], None], shape: tuple[int, int, int], window: int,
                   overlap: float = 0.5, batch_size: int = 8, blend: str = "gaussian",
                   device: torch.device | str = "cpu", desc: str = "predict", margin: int = 0) -> None:
    """Run ``net`` over windows of a ``(Z, Y, X)`` input and write the blended ``(Z, 2Y, 2X)`` output.

    ``read_cols(x0, x1)`` returns the input columns ``(Z, Y, x1 − x0)`` (float32, normalised);
    ``net`` maps ``(B, 1, Z, wy, wx)`` to ``(B, 1, Z, 2wy, 2wx)``; ``write_cols(x0, x1, out)`` receives
    the final output for approximant columns ``[x0, x1)``, i.e. ``out`` of shape ``(Z, 2Y, 2(x1 − x0))``,
    called left to right, each column once. Outputs within ``margin`` approximant voxels of a
    window's inner edges get weight 0; per axis the margin is capped at ``(w − largest step)/2``
    so that every voxel keeps a window (:func:`tile_margins`).
    """
    nz, ny, nx = shape
    wy, wx = min(window, ny), min(window, nx)
    ys, xs = patch_starts(ny, wy, overlap), patch_starts(nx, wx, overlap)
    my, mx = tile_margins(ys, wy, margin), tile_margins(xs, wx, margin)
    base = blend_weights(2 * wy, 2 * wx, blend)

    def weight(y0: int, x0: int) -> torch.Tensor:
        w = base.clone()
        if y0 > 0:
            w[: 2 * my] = 0
        if y0 + wy < ny:
            w[2 * (wy - my):] = 0
        if x0 > 0:
            w[:, : 2 * mx] = 0
        if x0 + wx < nx:
            w[:, 2 * (wx - mx):] = 0
        return w

    per_group = max(1, math.ceil(batch_size / len(ys)))  # x starts whose windows share one read
    acc = torch.zeros(nz, 2 * ny, 0)
    wsum = torch.zeros(2 * ny, 0)
    b0 = 0  # approximant column of acc[..., 0]
    groups = [xs[i:i + per_group] for i in range(0, len(xs), per_group)]
    for gi, group in enumerate(progress(groups, desc, unit="columns")):
        c0, c1 = group[0], group[-1] + wx
        cols = read_cols(c0, c1)
        grow = 2 * (c1 - b0) - acc.shape[-1]
        if grow > 0:
            acc = torch.cat([acc, torch.zeros(nz, 2 * ny, grow)], dim=-1)
            wsum = torch.cat([wsum, torch.zeros(2 * ny, grow)], dim=-1)
        tiles = [(y0, x0) for x0 in group for y0 in ys]
        for s in range(0, len(tiles), batch_size):
            chunk = tiles[s:s + batch_size]
            xb = torch.stack([cols[:, y0:y0 + wy, x0 - c0:x0 - c0 + wx] for y0, x0 in chunk])[:, None]
            with torch.no_grad():
                out = net(xb.to(device)).float().cpu()[:, 0]
            for (y0, x0), o in zip(chunk, out):
                sy, sx = slice(2 * y0, 2 * (y0 + wy)), slice(2 * (x0 - b0), 2 * (x0 - b0 + wx))
                w = weight(y0, x0)
                acc[:, sy, sx] += o * w
                wsum[sy, sx] += w
        done = groups[gi + 1][0] if gi + 1 < len(groups) else nx  # columns left of the next start are final
        k = 2 * (done - b0)
        write_cols(b0, done, acc[..., :k] / wsum[:, :k])
        acc, wsum, b0 = acc[..., k:].clone(), wsum[:, k:].clone(), done


def tile_margins(starts: list[int], window: int, margin: int) -> int:
    """``margin`` capped at ``(window − largest gap between starts) // 2``: the most voxels a
    window may drop at each inner edge while every voxel stays inside some window's kept part."""
    if len(starts) < 2:
        return 0
    gap = max(b - a for a, b in zip(starts, starts[1:]))
    return max(0, min(margin, (window - gap) // 2))


def _model(model: str | Path | LoadedModel, device: torch.device) -> LoadedModel:
    if isinstance(model, LoadedModel):
        model.network.to(device).eval()
        return model
    return load_model(model, device)


def _network_fn(m: LoadedModel, device: torch.device, amp: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    cuda = device.type == "cuda"
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    scale, offset = m.normalisation["output_scale"], m.normalisation["output_offset"]

    def fn(x: torch.Tensor) -> torch.Tensor:
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=dtype, enabled=cuda and amp):
            return m.network(x).float() * scale + offset
    return fn


def _plan(m: LoadedModel, shape: tuple[int, int, int], settings: PredictSettings,
          name: str) -> tuple[int, int, int]:
    """(output slices, window, margin); logs a z resampling, and warns when the tile overlap does
    not cover the network's receptive field in y or x."""
    nz = settings.z_slices or int(m.training.get("target_z") or shape[0])
    if nz != shape[0]:
        log.warning(f"{name}: resampled along z from {shape[0]} to {nz} slices (linear)")
    window = settings.window or m.patch
    margin = math.ceil(max(receptive_field(m.settings)[1:]))
    kept = [tile_margins(patch_starts(n, min(window, n), settings.overlap), min(window, n), margin)
            for n in shape[1:]]
    tiled = [window < n for n in shape[1:]]
    if any(t and k < margin for t, k in zip(tiled, kept)):
        # the smallest window that keeps `margin`; a window covering the volume always does
        need = next((w for w in range(window, max(shape[1:])) if
                     all(tile_margins(patch_starts(n, min(w, n), settings.overlap), min(w, n), margin) >= margin
                         for n in shape[1:] if w < n)), max(shape[1:]))
        log.warning(f"{name}: the tile overlap keeps outputs {min(k for t, k in zip(tiled, kept) if t)} voxels "
                    f"from inner tile edges, but the network's receptive field reaches {margin}: tiles see zero "
                    f"padding where the volume has data, so the result depends on the tiling; use --window "
                    f"{need} or more (or a larger --overlap) for tiles that equal whole-volume inference")
    return nz, window, margin


def _output_attrs(m: LoadedModel, settings: PredictSettings, model_path: Any, source: Any) -> dict[str, Any]:
    from .runinfo import provenance
    attrs = provenance(settings.to_dict(), [str(model_path), str(source)])
    attrs.update({"quantity": "phase_rad_per_voxel", "model_variant": m.settings.variant})
    return attrs


def predict(model: str | Path | LoadedModel, approximant: Volume, settings: PredictSettings | None = None,
            name: str = "approximant") -> Volume:
    """Predict the golden-standard-quality volume from an approximant held in memory.

    Parameters
    ----------
    model : path or LoadedModel
        A model file from ``rapidtomo train`` (loaded with ``weights_only=True``) or a loaded model.
    approximant : Volume
        The approximant, ``(Z, Y, X)``, phase in radians per voxel, voxel sizes ``(dz, dy, dx)``.
    settings : PredictSettings, optional
        Window, overlap, blending, batch size, device, normalisation and output slices; defaults
        if None.
    name : str
        What the approximant is called in messages (e.g. its file name).

    Returns
    -------
    Volume
        ``(Z', 2Y, 2X)`` phase in radians per voxel, voxel sizes ``(dz·Z/Z', dy/2, dx/2)``, where
        ``Z'`` is the training target's z unless ``settings.z_slices`` says otherwise; attributes
        hold provenance (settings, model, source) and the model's variant.

    Raises
    ------
    UserError
        The model file is missing, corrupt or foreign, or the approximant is constant and
        ``normalise = "volume"`` (its own statistics) cannot scale it.

    See Also
    --------
    predict_file : the same from a volume file to a volume file, streaming (larger than memory).
    """
    settings = settings or PredictSettings()
    device = pick_device(settings.device)
    m = _model(model, device)
    nz0, ny, nx = approximant.shape
    nz, window, margin = _plan(m, approximant.shape, settings, name)
    a = resample_z(np.asarray(approximant.data, dtype=np.float32), nz)
    mean, std = _norm(m, settings, float(a.double().mean()), float(a.double().std()), name)
    a = (a - mean) / std
    out = torch.empty(nz, 2 * ny, 2 * nx)

    def write(x0: int, x1: int, o: torch.Tensor) -> None:
        out[..., 2 * x0:2 * x1] = o

    sliding_window(_network_fn(m, device, settings.amp), lambda x0, x1: a[..., x0:x1], write, (nz, ny, nx), window,
                   settings.overlap, settings.batch_size, settings.blend, device, margin=margin)
    dz, dy, dx = approximant.voxel_size_m
    return Volume(out.numpy(), (dz * nz0 / nz, dy / 2, dx / 2),
                  _output_attrs(m, settings, model if not isinstance(model, LoadedModel) else "model", name))


def _norm(m: LoadedModel, settings: PredictSettings, mean: float, std: float, name: str) -> tuple[float, float]:
    if settings.normalise == "model":
        return m.normalisation["input_mean"], m.normalisation["input_std"]
    if not np.isfinite(std) or std <= 0:
        raise UserError(f"{name}: volume is constant: cannot normalise it (use normalise = 'model')")
    return mean, std


# --- out-of-core files -------------------------------------------------------------------------

def predict_file(model: str | Path | LoadedModel, in_path: str | Path, out_path: str | Path,
                 settings: PredictSettings | None = None) -> dict[str, Any]:
    """Predict from a volume file to a volume file (HDF5 ``.h5`` or zarr ``.zarr``), streaming
    column by column so neither volume needs to fit in memory. Returns a summary dict (shapes,
    seconds, voxels/s)."""
    import time
    settings = settings or PredictSettings()
    in_path, out_path = Path(in_path), Path(out_path)
    device = pick_device(settings.device)
    m = _model(model, device)
    with open_volume(in_path) as src:
        d, (dz, dy, dx) = src.data, src.voxel_size_m
        nz0, ny, nx = d.shape
        nz, window, margin = _plan(m, d.shape, settings, str(in_path))
        chunk = max(1, (64 * 1024 * 1024) // max(1, 4 * nz0 * ny))  # ~64 MB per statistics read

        def raw(x0: int, x1: int) -> torch.Tensor:
            c = np.asarray(d[:, :, x0:x1], dtype=np.float32)
            if not np.all(np.isfinite(c)):
                raise UserError(f"{in_path}: /volume contains NaN or infinite values")
            return resample_z(c, nz)

        s1 = s2 = 0.0
        for x0 in range(0, nx, chunk):
            c = raw(x0, min(nx, x0 + chunk)).double()
            s1, s2 = s1 + float(c.sum()), s2 + float((c * c).sum())
        n = nz * ny * nx
        var = max(s2 - s1 * s1 / n, 0.0) / max(n - 1, 1)
        mean, std = _norm(m, settings, s1 / n, math.sqrt(var), str(in_path))
        t0 = time.perf_counter()
        shape = (nz, 2 * ny, 2 * nx)
        chunks = (shape[0], min(shape[1], 256), min(shape[2], 2 * window))
        attrs = _output_attrs(m, settings, model if not isinstance(model, LoadedModel) else "model", in_path)
        with create_volume(out_path, shape, (dz * nz0 / nz, dy / 2, dx / 2), attrs, chunks=chunks) as dst:
            def write(x0: int, x1: int, o: torch.Tensor) -> None:
                dst.data[:, :, 2 * x0:2 * x1] = o.numpy()
            sliding_window(_network_fn(m, device, settings.amp), lambda x0, x1: (raw(x0, x1) - mean) / std, write,
                           (nz, ny, nx), window, settings.overlap, settings.batch_size, settings.blend, device,
                           margin=margin)
        seconds = time.perf_counter() - t0
    return {"input_shape": [nz0, ny, nx], "output_shape": list(shape), "seconds": seconds,
            "output_voxels_per_s": nz * 4 * ny * nx / seconds if seconds > 0 else float("nan")}

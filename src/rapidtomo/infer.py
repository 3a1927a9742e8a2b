"""Tiled inference: sliding windows over y and x with overlap and smooth blending, batched,
on CPU or CUDA, writing the 2x finer output; out-of-core from and to HDF5/zarr files.

Windows span the whole z; in y and x they are the model's training patch (approximant grid)
with 50 % overlap by default, the last window aligned to the volume's end. Every input the
model takes (``LoadedModel.settings.inputs``) is windowed on the same region: the approximant
on its grid, the full-resolution ones (reduced-angle SART, FBP) with windows 2x larger. Each window's output
(2x the window in y and x) is weighted by a separable Gaussian (σ = window/8 on each axis,
floored at 1e-3 so edges still count) and the sum is divided by the summed weights, so the
result has no seams. Where the volume fits in one window the network runs once on it.

Receptive field: a window's outputs within the network's receptive-field radius ``r``
(:func:`rapidtomo.nn.receptive_field`) of an inner window edge (one not on the volume's border)
saw zero padding where the whole volume has data. Where the overlap can spare ``r`` voxels at
each inner edge (``(window − step)/2 ≥ r``), those outputs get weight 0 and tiled inference
equals whole-volume inference (for window starts on multiples of ``2**(depth−1)``, the
network's pooling grid). Where it cannot, all outputs keep their Gaussian weights (dropping
some would make nothing exact and, measured, lowers the held-out PCC by 0.002) and a warning
names the window that would be exact; with the training patch as window that is an info line,
since the network learned with the same padding (and predicts best so, docs/network.md).

We use our own engine rather than MONAI's ``sliding_window_inference``: that one needs the whole
input (and output) as one in-memory tensor, while volumes larger than memory must stream column
by column from a file to a file here; it would also add a large dependency for ~100 lines.

Streaming visits the windows in order of their x start; once the windows starting at ``x0`` are
done, every output column left of the next start is final and is written out, so memory holds
about ``Z × 2Y × 2·window`` output voxels (plus the input columns being read), whatever X is.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field

from .cluster import Cluster
from .config import Settings
from .device import pick_device
from .errors import UserError
from .io import Volume, create_volume, open_volume
from .nn import LoadedModel, check_inputs, load_model, receptive_field
from .nn.unet import COARSE_INPUTS
from .progress import progress
from .train.data import resample_z, stack_inputs
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
    block_windows: int = Field(4, ge=1, description="on a dask cluster: approximant columns per task, in windows "
                               "(the window that overlaps the previous block runs in both: fewer, larger blocks "
                               "repeat less)")


def blend_weights(ny: int, nx: int, kind: str = "gaussian") -> torch.Tensor:
    """``(ny, nx)`` window weights: separable Gaussian with σ = n/8, max 1, floored at 1e-3; or ones."""
    if kind == "constant":
        return torch.ones(ny, nx)

    def g(n: int) -> torch.Tensor:
        c = (n - 1) / 2
        return torch.exp(-0.5 * ((torch.arange(n) - c) / max(n / 8, 1e-6)) ** 2)
    return (g(ny)[:, None] * g(nx)[None, :]).clamp_min(1e-3)


def sliding_window(net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   read_cols: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]],
                   write_cols: Callable[[int, int, torch.Tensor], None], shape: tuple[int, int, int], window: int,
                   overlap: float = 0.5, batch_size: int = 8, blend: str = "gaussian",
                   device: torch.device | str = "cpu", desc: str = "predict", margin: int = 0,
                   columns: tuple[int, int] | None = None, show_progress: bool = True) -> None:
    """Run ``net`` over windows of inputs on a ``(Z, Y, X)`` grid and write the blended ``(Z, 2Y, 2X)``
    output.

    ``read_cols(x0, x1)`` returns the input columns (float32, normalised) as ``(coarse (Cc, Z, Y,
    x1 − x0), fine (Cf, Z, 2Y, 2(x1 − x0)))``, the inputs on the approximant's and on the 2x finer
    grid (``Cc`` or ``Cf`` may be 0); ``net(coarse, fine)`` maps ``(B, Cc, Z, wy, wx)`` and
    ``(B, Cf, Z, 2wy, 2wx)`` to ``(B, 1, Z, 2wy, 2wx)``; ``write_cols(x0, x1, out)`` receives
    the final output for approximant columns ``[x0, x1)``, i.e. ``out`` of shape ``(Z, 2Y, 2(x1 − x0))``,
    called left to right, each column once. Outputs within ``margin`` approximant voxels of a
    window's inner edges get weight 0; per axis the margin is capped at ``(w − largest step)/2``
    so that every voxel keeps a window (:func:`tile_margins`). With ``columns = (c0, c1)`` only
    approximant columns ``[c0, c1)`` are written, from the windows that reach them (a block of
    the output, equal to the same columns of the whole run).
    """
    nz, ny, nx = shape
    wy, wx = min(window, ny), min(window, nx)
    ys, xs = patch_starts(ny, wy, overlap), patch_starts(nx, wx, overlap)
    my, mx = tile_margins(ys, wy, margin), tile_margins(xs, wx, margin)
    c0, c1 = columns or (0, nx)
    xs = [x0 for x0 in xs if x0 < c1 and x0 + wx > c0]
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
    for gi, group in enumerate(progress(groups, desc, unit="columns") if show_progress else groups):
        r0, r1 = group[0], group[-1] + wx
        coarse, fine = read_cols(r0, r1)
        grow = 2 * (r1 - b0) - acc.shape[-1]
        if grow > 0:
            acc = torch.cat([acc, torch.zeros(nz, 2 * ny, grow)], dim=-1)
            wsum = torch.cat([wsum, torch.zeros(2 * ny, grow)], dim=-1)
        tiles = [(y0, x0) for x0 in group for y0 in ys]
        for s in range(0, len(tiles), batch_size):
            chunk = tiles[s:s + batch_size]
            cb = torch.stack([coarse[..., y0:y0 + wy, x0 - r0:x0 - r0 + wx] for y0, x0 in chunk])
            fb = torch.stack([fine[..., 2 * y0:2 * (y0 + wy), 2 * (x0 - r0):2 * (x0 - r0 + wx)] for y0, x0 in chunk])
            with torch.no_grad():
                out = net(cb.to(device), fb.to(device)).float().cpu()[:, 0]
            for (y0, x0), o in zip(chunk, out):
                sy, sx = slice(2 * y0, 2 * (y0 + wy)), slice(2 * (x0 - b0), 2 * (x0 - b0 + wx))
                w = weight(y0, x0)
                acc[:, sy, sx] += o * w
                wsum[sy, sx] += w
        done = groups[gi + 1][0] if gi + 1 < len(groups) else nx  # columns left of the next start are final
        k = 2 * (done - b0)
        lo, hi = max(b0, c0), min(done, c1)
        if hi > lo:
            write_cols(lo, hi, acc[..., 2 * (lo - b0):2 * (hi - b0)] / wsum[:, 2 * (lo - b0):2 * (hi - b0)])
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

    def fn(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        if cuda:
            coarse, fine = (t.contiguous(memory_format=torch.channels_last_3d) for t in (coarse, fine))
        with torch.autocast(device.type, dtype=dtype, enabled=cuda and amp):
            return m.network(coarse, fine).float() * scale + offset
    return fn


def _plan(m: LoadedModel, shape: tuple[int, int, int], settings: PredictSettings,
          name: str) -> tuple[int, int, int]:
    """(output slices, window, margin); logs a z resampling. The margin is the receptive-field
    radius in y, x where the tile overlap covers it, else 0, with a warning (an info line when
    the window is the training patch: the network learned with that padding, and on the demo's
    shapes predicts best with it, docs/network.md)."""
    nz = settings.z_slices or int(m.training.get("target_z") or shape[0])
    if nz != shape[0]:
        log.warning(f"{name}: resampled along z from {shape[0]} to {nz} slices (linear)")
    window = settings.window or m.patch
    margin = math.ceil(max(receptive_field(m.settings)[1:]))
    kept = [tile_margins(patch_starts(n, min(window, n), settings.overlap), min(window, n), margin)
            for n in shape[1:]]
    tiled = [window < n for n in shape[1:]]
    if not any(t and k < margin for t, k in zip(tiled, kept)):
        return nz, window, margin
    # not covered: the smallest window that keeps `margin`; a window covering the volume always does
    need = next((w for w in range(window, max(shape[1:])) if
                 all(tile_margins(patch_starts(n, min(w, n), settings.overlap), min(w, n), margin) >= margin
                     for n in shape[1:] if w < n)), max(shape[1:]))
    msg = (f"{name}: the tile overlap spares {min(k for t, k in zip(tiled, kept) if t)} voxels at inner tile "
           f"edges, but the network's receptive field reaches {margin}: near their edges tiles see zero padding "
           f"where the volume has data, so the result depends on the tiling (--window {need} or more would "
           f"equal whole-volume inference)")
    if window == m.patch:  # the training condition: patches saw the same padding, and predict best so
        log.info(msg + "; the window is the training patch, as the network learned")
    else:
        log.warning(msg)
    return nz, window, 0


def _output_attrs(m: LoadedModel, settings: PredictSettings, model_path: Any, sources: list[Any]) -> dict[str, Any]:
    from .runinfo import provenance
    attrs = provenance(settings.to_dict(), [str(model_path), *map(str, sources)])
    attrs.update({"quantity": "phase_rad_per_voxel", "model_variant": m.settings.variant,
                  "model_inputs": list(m.settings.inputs)})
    return attrs


@dataclass
class _Source:
    """One input of the network: ``data`` ``(Z0, Y·scale, X·scale)`` (an array or an HDF5/zarr
    dataset, read by columns), on the approximant's grid (``scale`` 1) or the 2x finer one (2)."""

    name: str
    data: Any
    label: str
    scale: int

    def cols(self, x0: int, x1: int, nz: int) -> torch.Tensor:
        """Columns ``[x0, x1)`` of the approximant grid, resampled to ``nz`` slices; NaN refused."""
        c = np.asarray(self.data[:, :, self.scale * x0:self.scale * x1], dtype=np.float32)
        if not np.all(np.isfinite(c)):
            raise UserError(f"{self.label}: /volume contains NaN or infinite values")
        return resample_z(c, nz)

    def stats(self, nx: int, nz: int) -> tuple[float, float]:
        """Mean and std (ddof 1) after z resampling, in column chunks of ~64 MB."""
        z0, y = self.data.shape[:2]
        chunk = max(1, (64 * 1024 * 1024) // max(1, 4 * z0 * y * self.scale))
        s1 = s2 = 0.0
        for x0 in range(0, nx, chunk):
            c = self.cols(x0, min(nx, x0 + chunk), nz).double()
            s1, s2 = s1 + float(c.sum()), s2 + float((c * c).sum())
        n = nz * y * nx * self.scale
        return s1 / n, math.sqrt(max(s2 - s1 * s1 / n, 0.0) / max(n - 1, 1))


def _sources(m: LoadedModel, approximant: tuple[Any, str] | None, baselines: dict[str, tuple[Any, str]],
             model_name: str) -> tuple[list[_Source], tuple[int, int, int]]:
    """The model's inputs in channel order and the approximant grid ``(Z0, Y, X)``; a missing,
    surplus or misshapen input is a one-line UserError."""
    check_inputs(m, (["approximant"] if approximant is not None else []) + list(baselines), model_name)
    given = {**({"approximant": approximant} if approximant is not None else {}), **baselines}
    srcs = [_Source(n, given[n][0], given[n][1], 1 if n in COARSE_INPUTS else 2) for n in m.settings.inputs]
    for s in srcs:
        if len(s.data.shape) != 3:
            raise UserError(f"{s.label}: /volume must be 3D (z, y, x), got shape {tuple(s.data.shape)}")
    first = srcs[0]
    z0, y, x = first.data.shape
    if first.scale == 2 and (y % 2 or x % 2):
        raise UserError(f"{first.label}: y, x = ({y}, {x}) must be even (the output grid is 2x the approximant's)")
    grid = (z0, y // first.scale, x // first.scale)
    for s in srcs[1:]:
        want = (grid[1] * s.scale, grid[2] * s.scale)
        if tuple(s.data.shape[1:]) != want:
            raise UserError(f"{s.label}: y, x = {tuple(s.data.shape[1:])} must be {want} to pair with "
                            f"{first.label} {tuple(first.data.shape)} (the baselines are on the 2x finer grid)")
    return srcs, grid


def _reader(srcs: list[_Source], norm: list[tuple[float, float]], nz: int, ny: int
            ) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]:
    """``read_cols`` of :func:`sliding_window`: the normalised inputs' columns, coarse and fine."""
    def read(x0: int, x1: int) -> tuple[torch.Tensor, torch.Tensor]:
        cols = [(s.cols(x0, x1, nz) - mean) / std for s, (mean, std) in zip(srcs, norm)]
        coarse = [c for c, s in zip(cols, srcs) if s.scale == 1]
        fine = [c for c, s in zip(cols, srcs) if s.scale == 2]
        return (stack_inputs(coarse, (nz, ny, x1 - x0)), stack_inputs(fine, (nz, 2 * ny, 2 * (x1 - x0))))
    return read


def _prepare(m: LoadedModel, srcs: list[_Source], grid: tuple[int, int, int], settings: PredictSettings,
             name: str) -> tuple[int, int, int, list[tuple[float, float]]]:
    """(output slices, window, margin) of :func:`_plan` and each input's (mean, std) of :func:`_norm`."""
    nz, window, margin = _plan(m, grid, settings, name)
    return nz, window, margin, [_norm(m, settings, s, grid[2], nz) for s in srcs]


def _run(m: LoadedModel, srcs: list[_Source], grid: tuple[int, int, int], settings: PredictSettings,
         device: torch.device, write: Callable[[int, int, torch.Tensor], None], name: str) -> int:
    """Normalise every input and run the tiled network, writing output columns; returns the output's Z."""
    nz, window, margin, norm = _prepare(m, srcs, grid, settings, name)
    _, ny, nx = grid
    sliding_window(_network_fn(m, device, settings.amp), _reader(srcs, norm, nz, ny), write, (nz, ny, nx), window,
                   settings.overlap, settings.batch_size, settings.blend, device, margin=margin)
    return nz


def _voxel_out(voxel_size_m, scale: int, nz0: int, nz: int) -> tuple[float, float, float]:
    """The output's voxel sizes from an input's (on the grid of ``scale``) and the z resampling."""
    dz, dy, dx = voxel_size_m
    return dz * nz0 / nz, dy * scale / 2, dx * scale / 2


def predict(model: str | Path | LoadedModel, approximant: Volume | None, settings: PredictSettings | None = None,
            name: str = "approximant", baselines: dict[str, Volume] | None = None) -> Volume:
    """Predict the golden-standard-quality volume from the model's inputs held in memory.

    Parameters
    ----------
    model : path or LoadedModel
        A model file from ``rapidtomo train`` (loaded with ``weights_only=True``) or a loaded model.
    approximant : Volume or None
        The approximant, ``(Z, Y, X)``, phase in radians per voxel, voxel sizes ``(dz, dy, dx)``;
        None for a model that does not take it.
    settings : PredictSettings, optional
        Window, overlap, blending, batch size, device, normalisation and output slices; defaults
        if None.
    name : str
        What the approximant is called in messages (e.g. its file name).
    baselines : dict of str to Volume, optional
        The full-resolution inputs the model takes (``sart``, ``fbp``), ``(Zb, 2Y, 2X)``.

    Returns
    -------
    Volume
        ``(Z', 2Y, 2X)`` phase in radians per voxel, voxel sizes ``(dz·Z/Z', dy/2, dx/2)``, where
        ``Z'`` is the training target's z unless ``settings.z_slices`` says otherwise; attributes
        hold provenance (settings, model, sources), the model's variant and inputs.

    Raises
    ------
    UserError
        The model file is missing, corrupt or foreign, the inputs are not the model's or do not
        pair, or an input is constant and ``normalise = "volume"`` (its own statistics) cannot
        scale it.

    See Also
    --------
    predict_file : the same from volume files to a volume file, streaming (larger than memory).
    """
    settings = settings or PredictSettings()
    device = pick_device(settings.device)
    m = _model(model, device)
    vols = {**({"approximant": approximant} if approximant is not None else {}), **(baselines or {})}
    labels = {n: name if n == "approximant" else n for n in vols}
    srcs, grid = _sources(m, (approximant.data, name) if approximant is not None else None,
                          {n: (v.data, n) for n, v in (baselines or {}).items()}, "model")
    first = vols[srcs[0].name]
    nz0, ny, nx = grid
    nz = settings.z_slices or int(m.training.get("target_z") or nz0)
    out = torch.empty(nz, 2 * ny, 2 * nx)

    def write(x0: int, x1: int, o: torch.Tensor) -> None:
        out[..., 2 * x0:2 * x1] = o

    _run(m, srcs, grid, settings, device, write, labels[srcs[0].name])
    return Volume(out.numpy(), _voxel_out(first.voxel_size_m, srcs[0].scale, first.shape[0], nz),
                  _output_attrs(m, settings, model if not isinstance(model, LoadedModel) else "model",
                                [labels[s.name] for s in srcs]))


def _norm(m: LoadedModel, settings: PredictSettings, src: _Source, nx: int, nz: int) -> tuple[float, float]:
    """An input's (mean, std): the training input's (``normalise = "model"``) or its own."""
    if settings.normalise == "model":
        return m.normalisation[f"{src.name}_mean"], m.normalisation[f"{src.name}_std"]
    mean, std = src.stats(nx, nz)
    if not np.isfinite(std) or std <= 0:
        raise UserError(f"{src.label}: volume is constant: cannot normalise it (use normalise = 'model')")
    return mean, std


# --- out-of-core files -------------------------------------------------------------------------

def predict_file(model: str | Path | LoadedModel, in_path: str | Path | None, out_path: str | Path,
                 settings: PredictSettings | None = None, baselines: dict[str, str | Path] | None = None,
                 cluster: Cluster | None = None) -> dict[str, Any]:
    """Predict from volume files to a volume file (HDF5 ``.h5`` or zarr ``.zarr``), streaming
    column by column so no volume needs to fit in memory. ``in_path`` is the approximant (None
    for a model that does not take it), ``baselines`` the full-resolution input files by name
    (``sart``, ``fbp``). Returns a summary dict (shapes, seconds, voxels/s).

    With an active ``cluster`` (:class:`rapidtomo.cluster.Cluster`) blocks of
    ``block_windows`` windows' columns are dask tasks (:func:`_predict_blocks`): the workers
    read the input files and write their block into the zarr store ``OUT.tiles.zarr``, which
    becomes the output (``.zarr``) or is copied into it (HDF5); a rerun after a crash skips the
    blocks finished under the same model, inputs and settings. The summary then also holds
    ``blocks``, ``blocks_reused`` and ``cluster``."""
    settings = settings or PredictSettings()
    out_path = Path(out_path)
    device = pick_device(settings.device)
    m = _model(model, device)
    paths = {**({"approximant": Path(in_path)} if in_path is not None else {}),
             **{n: Path(p) for n, p in (baselines or {}).items()}}
    with ExitStack() as stack:
        opened = {n: stack.enter_context(open_volume(p)) for n, p in paths.items()}
        srcs, grid = _sources(m, (opened["approximant"].data, str(in_path)) if in_path is not None else None,
                              {n: (v.data, str(paths[n])) for n, v in opened.items() if n != "approximant"},
                              str(model) if not isinstance(model, LoadedModel) else "model")
        first = opened[srcs[0].name]
        nz0, ny, nx = grid
        nz = settings.z_slices or int(m.training.get("target_z") or nz0)
        shape = (nz, 2 * ny, 2 * nx)
        window = settings.window or m.patch
        chunks = (shape[0], min(shape[1], 256), min(shape[2], 2 * window))
        attrs = _output_attrs(m, settings, model if not isinstance(model, LoadedModel) else "model",
                              [paths[s.name] for s in srcs])
        voxel = _voxel_out(first.voxel_size_m, srcs[0].scale, nz0, nz)
        t0 = time.perf_counter()
        extra = {}
        if cluster is not None and cluster.active:
            extra = _predict_blocks(m, model, srcs, paths, grid, settings, out_path, voxel, attrs, chunks, cluster)
        else:
            with create_volume(out_path, shape, voxel, attrs, chunks=chunks) as dst:
                def write(x0: int, x1: int, o: torch.Tensor) -> None:
                    dst.data[:, :, 2 * x0:2 * x1] = o.numpy()
                _run(m, srcs, grid, settings, device, write, str(paths[srcs[0].name]))
        seconds = time.perf_counter() - t0
    return {"input_shape": [nz0, ny, nx], "output_shape": list(shape), "seconds": seconds,
            "output_voxels_per_s": nz * 4 * ny * nx / seconds if seconds > 0 else float("nan"), **extra}


def _predict_blocks(m: LoadedModel, model: str | Path | LoadedModel, srcs: list[_Source], paths: dict[str, Path],
                    grid: tuple[int, int, int], settings: PredictSettings, out_path: Path, voxel_size_m,
                    attrs: dict[str, Any], chunks: tuple[int, int, int], cluster: Cluster) -> dict[str, Any]:
    """:func:`predict_file`'s cluster path: one dask task (:func:`_predict_block`) per block of
    approximant columns, a multiple of the output's zarr chunk so that no two tasks write one
    chunk; a block is finished when its marker ``OUT.tiles.zarr/done/X0`` exists. The store's
    ``tiles_key`` (model, inputs, settings, block size) decides whether a store left by a crash
    is resumed or started afresh."""
    import zarr

    from .io.atomic import replace_dir
    from .io.volume import init_zarr_volume, is_zarr
    from .runinfo import file_stamp
    nz, window, margin, norm = _prepare(m, srcs, grid, settings, str(paths[srcs[0].name]))
    _, ny, nx = grid
    shape = (nz, 2 * ny, 2 * nx)
    block = settings.block_windows * chunks[2] // 2
    key = hashlib.sha256(json.dumps({
        "model": _model_hash(m), "inputs": {n: file_stamp(p) for n, p in paths.items()}, "norm": norm,
        "settings": settings.model_dump(exclude={"device", "batch_size"}), "shape": shape, "block": block,
    }, sort_keys=True).encode()).hexdigest()[:16]
    store = out_path.with_suffix(".tiles.zarr").resolve()
    done_dir = store / "done"
    if _tiles_key(store) != key:
        shutil.rmtree(store, ignore_errors=True)
        init_zarr_volume(store, shape, voxel_size_m, attrs, chunks=chunks)
        zarr.open_group(str(store), mode="r+").attrs["tiles_key"] = key
        done_dir.mkdir()
    finished = {int(p.name) for p in done_dir.iterdir()}
    todo = [x0 for x0 in range(0, nx, block) if x0 not in finished]
    sources = [(s.name, str(paths[s.name].resolve()), s.label, s.scale) for s in srcs]
    model_arg = model if isinstance(model, LoadedModel) else str(Path(model).resolve())

    def args(x0: int) -> tuple:
        return model_arg, sources, str(store), (x0, min(nx, x0 + block)), grid, nz, window, margin, norm, settings

    for _ in progress(cluster.map(_predict_block, todo, args, "predict"), "predict", total=len(todo), unit="block"):
        pass
    if is_zarr(out_path):
        shutil.rmtree(done_dir)
        replace_dir(store, out_path)
    else:
        src = zarr.open_array(str(store / "volume"), mode="r")
        with create_volume(out_path, shape, voxel_size_m, attrs, chunks=chunks) as dst:
            for x0 in range(0, shape[2], chunks[2]):
                dst.data[:, :, x0:x0 + chunks[2]] = src[:, :, x0:x0 + chunks[2]]
        shutil.rmtree(store)
    return {"blocks": -(-nx // block), "blocks_reused": len(finished), "cluster": cluster.record()}


def _tiles_key(store: Path) -> str | None:
    """The ``tiles_key`` of a tiles store left by an earlier run (None: none, or unreadable)."""
    import zarr
    try:
        return zarr.open_group(str(store), mode="r").attrs.get("tiles_key") if (store / "done").is_dir() else None
    except Exception:  # a store cut short while it was being made: started afresh
        return None


def _model_hash(m: LoadedModel) -> str:
    """sha256 of a model's weights, normalisation and patch: what its predictions depend on."""
    h = hashlib.sha256(json.dumps([m.normalisation, m.patch], sort_keys=True, default=str).encode())
    for name, t in m.network.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _predict_block(model: str | LoadedModel, sources: list[tuple[str, str, str, int]], store: str,
                   block: tuple[int, int], grid: tuple[int, int, int], nz: int, window: int, margin: int,
                   norm: list[tuple[float, float]], settings: PredictSettings) -> None:
    """One dask task: the output of approximant columns ``block = (x0, x1)`` written into the
    zarr ``store`` (its ``volume``), then the marker ``done/X0``. ``sources``: (name, file, label,
    grid scale) of each input; the device is picked here, on the worker."""
    import zarr
    device = pick_device(settings.device)
    m = _model(model, device)
    out = zarr.open_array(f"{store}/volume", mode="r+")

    def write(x0: int, x1: int, o: torch.Tensor) -> None:
        out[:, :, 2 * x0:2 * x1] = o.numpy()

    with ExitStack() as stack:
        srcs = [_Source(n, stack.enter_context(open_volume(p)).data, label, scale) for n, p, label, scale in sources]
        sliding_window(_network_fn(m, device, settings.amp), _reader(srcs, norm, nz, grid[1]), write,
                       (nz, grid[1], grid[2]), window, settings.overlap, settings.batch_size, settings.blend, device,
                       margin=margin, columns=block, show_progress=False)
    (Path(store) / "done" / str(block[0])).touch()

"""Training: NPCC loss, Adam with the polynomial schedule, validation on a band that no training
patch overlaps with early stopping, a checkpoint every epoch, resume, data-parallel over processes
launched by torchrun (gloo on CPU, NCCL on CUDA).

Determinism: the network is initialised from ``seed``; epoch ``e`` shuffles and flips with a
generator seeded by ``(seed, e)``, so a run resumed from the checkpoint of epoch ``e`` continues
exactly like an uninterrupted one (the early-stopping state is in the checkpoint too).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field

from ..config import Settings
from ..device import pick_device
from ..errors import UserError
from ..io import Volume
from ..io.atomic import atomic_path
from ..nn import NetworkSettings, build_network, network_preset, preset_patch, save_model
from ..nn.blocks import Norm
from ..nn.unet import Inputs, Preset, Variant
from ..progress import progress
from ..runinfo import Timer
from ..validity import check_geometry, geometry_from_attrs
from .data import PatchPairs, prepare_pairs
from .loss import npcc, poly_lr

log = logging.getLogger("rapidtomo.train")

# the preset's default learning rates (lr(0), lr(end)): the paper's for its 21.6 M-parameter
# network; 5x (resp. 2x) higher for the small one, which so reaches in 80 epochs a better held-out
# PCC than in 200 with the paper's (docs/benchmarks.md, "Training stage on the demo's shapes")
PRESET_LR: dict[str, tuple[float, float]] = {"small": (1e-3, 1e-4), "paper": (2e-4, 5e-5)}

# settings that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = {"epochs", "device", "patience"}


class TrainSettings(Settings):
    """Settings of ``rapidtomo train`` (section ``[train]``)."""

    preset: Preset = Field("small", description="network/patch preset: small (16×16 patches, depth 3, "
                           "widths 8·2^l, CPU-sized) or paper (64×64, depth 4, widths 32·2^l)")
    variant: Variant = Field("E", description="architecture of the ablation family A–G (E = RAPID)")
    inputs: Inputs = Field(["approximant"], description="the network's inputs: approximant (the paper's), "
                                "sart and/or fbp (the reduced-angle baselines at the target's resolution; "
                                "docs/network.md, \"Inputs\")")
    widths: list[int] | None = Field(None, description="override: channels per encoder level (depth = length)")
    rates: list[int] | None = Field(None, description="override: in-plane atrous rates (default: preset's, "
                                    "paper's (6, 12, 18) scaled by patch/64)")
    z_rates: list[int] | None = Field(None, description="override: (a1, a2) z dilations, in slices, of the "
                                      "anisotropic module (default: the paper's (24, 30) scaled by Z/280)")
    norm: Norm | None = Field(None, description="override: normalisation (batch, instance, group, none)")
    patch: int | None = Field(None, ge=4, description="approximant patch in y and x (target patches are 2x); "
                              "default: the preset's")
    overlap: float = Field(0.5, ge=0, lt=1, description="overlap fraction of neighbouring patches (paper: 0.5)")
    train_fraction: float = Field(0.6, gt=0, lt=1, description="x < fraction·X is the training part, the rest "
                                  "is held out for testing")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="width of the validation band, as a share of the "
                                "training part's x (at least one patch; 0: no validation): the band next to the "
                                "held-out part, which no training patch overlaps")
    patience: int | None = Field(15, ge=1, description="early stopping: stop after this many epochs without a "
                                 "lower validation loss (none: run all epochs); the model file always holds the "
                                 "epoch with the lowest validation loss")
    flips: bool = Field(True, description="random flips along y and x (the same for input and target)")
    epochs: int = Field(80, ge=1, description="passes over the training patches, at most (paper: 200)")
    batch_size: int = Field(2, ge=1, description="patches per step and process (paper: 2)")
    lr_start: float | None = Field(None, gt=0, description="initial learning rate lr(0) (Eq. 12); default: the "
                                   "preset's, small 1e-3, paper 2e-4 (the paper's)")
    lr_end: float | None = Field(None, ge=0, description="final learning rate lr(end) (Eq. 12); default: the "
                                 "preset's, small 1e-4, paper 5e-5 (the paper's)")
    lr_power: float = Field(0.5, gt=0, description="power p of the polynomial decay (Eq. 12)")
    decay_steps: int | None = Field(None, ge=1, description="decay steps T (paper: 3e4); default: all steps")
    seed: int = Field(0, description="seed of initialisation, shuffling and flips")
    device: str = Field("auto", description="torch device: auto, cpu, cuda (with torchrun: cuda:LOCAL_RANK)")
    amp: bool = Field(True, description="mixed precision (bfloat16, else float16 with loss scaling) on CUDA")
    channels_last: bool = Field(True, description="channels-last-3d memory format on CUDA")
    init: str | None = Field(None, description="start from this pre-trained model file (rapidtomo pretrain) "
                             "instead of random weights; its network and geometry must fit")

    def network_settings(self, nz: int | None = None) -> NetworkSettings:
        """The preset's settings for ``variant``, with in-plane rates for :meth:`patch_size` and z
        rates for ``nz`` slices (default: the preset's nominal Z), then the overrides applied."""
        base = network_preset(self.preset, self.variant, nz=nz, patch=self.patch_size(), norm=self.norm or "batch")
        over = {k: getattr(self, k) for k in ("widths", "rates", "z_rates") if getattr(self, k) is not None}
        return NetworkSettings(**{**base.model_dump(), **over, "inputs": self.inputs})

    def patch_size(self) -> int:
        return self.patch or preset_patch(self.preset)

    def learning_rates(self) -> tuple[float, float]:
        """(lr(0), lr(end)): the settings', else the preset's (:data:`PRESET_LR`)."""
        start, end = PRESET_LR[self.preset]
        return (start if self.lr_start is None else self.lr_start, end if self.lr_end is None else self.lr_end)

    def lr(self, step: int, total_steps: int) -> float:
        """Learning rate at ``step`` of ``total_steps`` (:func:`~rapidtomo.train.loss.poly_lr`)."""
        return poly_lr(step, total_steps, *self.learning_rates(), self.lr_power)


def checkpoint_path(out_path: str | Path) -> Path:
    """The checkpoint beside a model file: ``model.pt`` → ``model.ckpt.pt``."""
    p = Path(out_path)
    return p.with_name(p.stem + ".ckpt.pt")


def log_paths(out_path: str | Path) -> tuple[Path, Path]:
    """CSV log and loss-curve PNG beside a model file: ``model.log.csv``, ``model.loss.png``."""
    p = Path(out_path)
    return p.with_name(p.stem + ".log.csv"), p.with_name(p.stem + ".loss.png")


def _dist_setup(settings: TrainSettings) -> tuple[bool, int, int, torch.device, bool]:
    """(distributed?, rank, world size, device, whether we initialised the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return False, 0, 1, pick_device(settings.device), False
    device = pick_device(settings.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    inited = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        inited = True
    return True, dist.get_rank(), dist.get_world_size(), device, inited


def _cpu_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _save_checkpoint(path: Path, run: "_Run", state: "_State", settings: TrainSettings, norm: dict) -> None:
    obj = {"format": "rapidtomo-checkpoint", "epoch": state.epoch, "step": state.step, "model": _cpu_state(run.net),
           "optimizer": run.opt.state_dict(), "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else {},
           "history": json.dumps(state.history), "settings": settings.model_dump_json(), "norm": json.dumps(norm),
           "best": json.dumps({"val": state.best_val, "epoch": state.best_epoch}), "best_model": state.best_model}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load_checkpoint(path: Path, settings: TrainSettings, norm: dict) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: checkpoint cannot be read ({type(e).__name__}); delete it or train without "
                        f"--resume") from None
    if not isinstance(ck, dict) or ck.get("format") != "rapidtomo-checkpoint":
        raise UserError(f"{path}: not a rapidtomo checkpoint")
    if "best" not in ck:
        raise UserError(f"{path}: checkpoint of an older rapidtomo (no validation state); train afresh")
    old = json.loads(ck["settings"])
    new = settings.to_dict()
    changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k])
    if changed:
        raise UserError(f"{path}: checkpoint was made with different settings ({', '.join(changed)}); "
                        f"resume with the same settings or train afresh")
    old_norm = json.loads(ck["norm"])
    if any(k not in old_norm or abs(old_norm[k] - norm[k]) > 1e-6 * max(1.0, abs(norm[k])) for k in norm):
        raise UserError(f"{path}: checkpoint was made from different volumes (normalisation differs)")
    return ck


def _write_csv(path: Path, history: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def _plot_losses(path: Path, history: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], label="train")
    if any(h["val_loss"] == h["val_loss"] for h in history):  # not all NaN
        ax.plot(ep, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NPCC loss")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _evaluate(net, data: PatchPairs, idx: np.ndarray, batch: int, device, autocast, val: bool = False
              ) -> tuple[float, list]:
    """Mean NPCC over patches ``idx`` (eval mode) and the (prediction, target) pairs on CPU."""
    net.eval()
    losses, pairs = [], []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            (c, f), y = data.batch(idx[s:s + batch], val=val)
            with autocast():
                out = net(c.to(device), f.to(device)).float().cpu()
            losses.append(float(npcc(out, y)) * len(y))
            pairs.append((out, y))
    net.train()
    return (sum(losses) / len(idx) if len(idx) else float("nan")), pairs


@dataclass
class _Run:
    """What every step of a training run shares: processes, device, network, optimiser, precision."""

    distributed: bool
    rank: int
    world: int
    device: torch.device
    net: torch.nn.Module
    model: torch.nn.Module  # ``net``, wrapped in DDP when distributed
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    use_amp: bool
    channels_last: bool

    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=self.amp_dtype, enabled=self.use_amp)
        return torch.autocast("cpu", enabled=False)


@dataclass
class _State:
    """Progress: epochs done, optimiser steps, per-epoch records, the best validation epoch."""

    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    best_model: dict[str, torch.Tensor] = field(default_factory=dict)

    def stalled(self, patience: int | None) -> bool:
        """Early stopping: ``patience`` epochs have passed since the best validation loss."""
        return patience is not None and bool(self.best_model) and self.epoch - self.best_epoch >= patience


def _build(settings: TrainSettings, nz: int, distributed: bool, rank: int, world: int, device: torch.device) -> _Run:
    """Network (seeded), optimiser, precision and the DDP wrapper."""
    torch.manual_seed(settings.seed)
    net = build_network(settings.network_settings(nz)).to(device)
    cuda = device.type == "cuda"
    channels_last = cuda and settings.channels_last
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    use_amp = cuda and settings.amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rates()[0])
    model = (torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if cuda else None)
             if distributed else net)
    return _Run(distributed, rank, world, device, net, model, opt, scaler, amp_dtype, use_amp, channels_last)


def load_init(net: torch.nn.Module, init: str | Path, geometry: dict | None, data_name: str) -> str:
    """Load a pre-trained model's weights into ``net``; a network of other settings, or a model
    made for another geometry than ``geometry`` (the approximant's), is a one-line UserError."""
    from ..nn import load_model
    m = load_model(init)
    check_geometry(str(init), m.training.get("geometry"), data_name, geometry)
    mine = net.settings.to_dict()
    diff = [f"{k} {v} vs {mine.get(k)}" for k, v in m.settings.to_dict().items() if mine.get(k) != v]
    if diff:
        raise UserError(f"{init}: pre-trained network differs from [train]'s: {'; '.join(diff)} (model vs "
                        f"settings); train with the model's preset and overrides")
    net.load_state_dict(m.network.state_dict())
    note = f"initialised from the pre-trained model {init}"
    log.warning(note)
    return note


def _resume(run: _Run, ckpt: Path, settings: TrainSettings, norm: dict, notes: list[str]) -> _State:
    """The state of the checkpoint ``ckpt`` loaded into ``run`` (or a fresh state if it is missing)."""
    if not ckpt.is_file():
        notes.append(f"no checkpoint {ckpt}: training from scratch")
        log.warning(notes[-1])
        return _State()
    ck = _load_checkpoint(ckpt, settings, norm)
    run.net.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    if ck["scaler"] and run.scaler.is_enabled():
        run.scaler.load_state_dict(ck["scaler"])
    best = json.loads(ck["best"])
    state = _State(int(ck["epoch"]), int(ck["step"]), json.loads(ck["history"]), float(best["val"]),
                   int(best["epoch"]), dict(ck["best_model"]))
    notes.append(f"resumed from {ckpt} at epoch {state.epoch}, step {state.step}")
    log.warning(notes[-1])
    return state


def _train_epoch(run: _Run, data: PatchPairs, settings: TrainSettings, state: _State, total_steps: int
                 ) -> tuple[float, int]:
    """One pass over this process's share of the shuffled, flipped training patches.

    Returns (summed loss × samples, samples) over all processes."""
    n, world = len(data.corners), run.world
    g = torch.Generator().manual_seed(settings.seed * 1_000_003 + state.epoch)
    perm = torch.randperm(n, generator=g).numpy()
    flips = torch.rand(n, 2, generator=g) < 0.5
    per_rank = math.ceil(n / world)
    mine = np.resize(np.arange(n), per_rank * world)[run.rank::world]  # equal shares: wrap around
    total, count = 0.0, 0
    for s in range(0, len(mine), settings.batch_size):
        sel = mine[s:s + settings.batch_size]
        (c, f), y = data.batch(perm[sel], flips[sel] if settings.flips else None)
        c, f, y = (t.to(run.device, non_blocking=True) for t in (c, f, y))
        if run.channels_last:
            c, f = (t.contiguous(memory_format=torch.channels_last_3d) for t in (c, f))
        for group in run.opt.param_groups:
            group["lr"] = settings.lr(state.step, total_steps)
        with run.autocast():
            out = run.model(c, f)
        loss = npcc(out.float(), y)
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
        state.step += 1
        total += float(loss.detach()) * len(sel)
        count += len(sel)
    stats = torch.tensor([total, count], dtype=torch.float64)
    if run.distributed:
        dist.all_reduce(stats)  # gloo/nccl: sums over processes
        for buf in run.net.buffers():  # batch-norm running statistics are per process: take rank 0's
            dist.broadcast(buf, 0)
    return float(stats[0]), int(stats[1])


def _validate(run: _Run, data: PatchPairs, settings: TrainSettings) -> float:
    """Validation NPCC (NaN without validation patches), computed on rank 0, known to every rank."""
    val = torch.tensor([float("nan")], dtype=torch.float64)
    if run.rank == 0 and len(data.val_corners):
        val[0] = _evaluate(run.net, data, np.arange(len(data.val_corners)), settings.batch_size, run.device,
                           run.autocast, val=True)[0]
    if run.distributed:
        dist.broadcast(val, 0)
    return float(val[0])


def _calibrate(run: _Run, data: PatchPairs, settings: TrainSettings) -> dict[str, float]:
    """The model file's normalisation: NPCC fixes the output only up to an affine map, so fit
    target ≈ a·out + b on the training patches (normalised units), then fold in the target's
    normalisation → radians."""
    _, pairs = _evaluate(run.net, data, np.arange(len(data.corners)), settings.batch_size, run.device, run.autocast)
    o = torch.cat([p[0].flatten() for p in pairs]).double()
    t = torch.cat([p[1].flatten() for p in pairs]).double()
    var = float(((o - o.mean()) ** 2).mean())
    a = float(((o - o.mean()) * (t - t.mean())).mean()) / var if var > 0 else 0.0
    b = float(t.mean()) - a * float(o.mean())
    return {**{k: v for k, v in data.norm.items() if not k.startswith("target_")},
            "output_scale": a * data.norm["target_std"],
            "output_offset": b * data.norm["target_std"] + data.norm["target_mean"]}


def train(approximant: Volume, target: Volume, settings: TrainSettings, out_path: str | Path,
          resume: bool = False, callback: Callable[[dict], None] | None = None,
          names: tuple[str, str] = ("approximant", "target"), pairs: tuple[PatchPairs, list[str]] | None = None,
          baselines: dict[str, Volume] | None = None, baseline_names: dict[str, str] | None = None
          ) -> dict[str, Any]:
    """Train the network on an approximant → golden-standard pair and write the model file.

    Steps: split and normalise the pair (:func:`~rapidtomo.train.data.prepare_pairs`), build the
    seeded network and optimiser, resume from the checkpoint if asked, then per epoch: train on
    the shuffled, flipped training patches, validate on the validation band, checkpoint; stop
    after ``epochs`` or when the validation loss has not improved for ``patience`` epochs; restore
    the epoch with the lowest validation loss, calibrate the output to radians and save.

    Under torchrun (``WORLD_SIZE > 1``) every process runs this with the same arguments; the
    patches of each epoch are sharded over the processes and gradients averaged (DDP); process 0
    validates and writes the files.

    Parameters
    ----------
    approximant : Volume
        ``(Za, Y, X)``, resampled along z to ``Zg`` when ``Za ≠ Zg``; gives the grid, the split
        and the geometry record even when ``settings.inputs`` leave it out.
    target : Volume
        The golden standard ``(Zg, 2Y, 2X)``.
    settings : TrainSettings
        Network, split, schedule, early stopping, device.
    out_path : str or Path
        The model file; beside it the checkpoint (:func:`checkpoint_path`), the CSV log and the
        loss curve (:func:`log_paths`).
    resume : bool
        Continue from the checkpoint beside ``out_path`` (from scratch, with a note, if none).
    callback : callable, optional
        Called with each epoch's record after its checkpoint is written.
    names : (str, str)
        Names of the two volumes in messages (e.g. their files).
    pairs : (PatchPairs, notes), optional
        Patches prepared elsewhere (a pre-training corpus, :mod:`rapidtomo.pretrain`) instead
        of those of ``approximant`` → ``target``, which then only give the geometry record.
    baselines : dict of str to Volume, optional
        The full-resolution inputs that ``settings.inputs`` name (``sart``, ``fbp``):
        ``(Zb, 2Y, 2X)``, resampled along z to ``Zg``; ``baseline_names`` name them in messages.

    Returns
    -------
    dict
        ``history`` (per-epoch records: epoch, step, lr, train_loss, val_loss, seconds),
        ``timings`` (s per phase), ``samples_per_s``, ``n_train``/``n_val`` patches, ``steps``,
        ``best_epoch``, ``notes``, ``network`` (the trained module, eval mode), ``normalisation``,
        ``model_path``, ``world_size``.

    Raises
    ------
    UserError
        The volumes do not pair (shapes), an input is missing, a volume is constant, or the
        training part is smaller than a patch plus the validation band; the checkpoint is unreadable or was made with other
        settings or volumes.
    """
    out_path = Path(out_path)
    timer = Timer()
    distributed, rank, world, device, inited = _dist_setup(settings)
    try:
        with timer("prepare"):
            data, notes = pairs or prepare_pairs(approximant, target, settings.patch_size(), settings.overlap,
                                                 settings.train_fraction, settings.val_fraction, names,
                                                 settings.inputs, baselines, baseline_names)
            run = _build(settings, int(data.target.shape[0]), distributed, rank, world, device)
            geometry = geometry_from_attrs(approximant.attrs)
            if settings.init and not (resume and checkpoint_path(out_path).is_file()):
                notes.append(load_init(run.net, settings.init, geometry, names[0]))
            steps_per_epoch = math.ceil(math.ceil(len(data.corners) / world) / settings.batch_size)
            total_steps = settings.decay_steps or settings.epochs * steps_per_epoch
            ckpt = checkpoint_path(out_path)
            state = _resume(run, ckpt, settings, data.norm, notes) if resume else _State()
        csv_path, png_path = log_paths(out_path)
        samples = 0
        epochs = range(state.epoch, settings.epochs)
        bar = progress(epochs, "train", unit="epoch") if rank == 0 else epochs
        with timer("train"):
            for _ in bar:
                if state.stalled(settings.patience):
                    break
                t0 = time.perf_counter()
                loss_sum, count = _train_epoch(run, data, settings, state, total_steps)
                samples += count
                val_loss = _validate(run, data, settings)
                state.epoch += 1
                if val_loss < state.best_val:
                    state.best_val, state.best_epoch, state.best_model = val_loss, state.epoch, _cpu_state(run.net)
                record = {"epoch": state.epoch, "step": state.step,
                          "lr": settings.lr(state.step, total_steps),
                          "train_loss": loss_sum / count, "val_loss": val_loss,
                          "seconds": round(time.perf_counter() - t0, 3)}
                state.history.append(record)
                if rank == 0:
                    _save_checkpoint(ckpt, run, state, settings, data.norm)
                    _write_csv(csv_path, state.history)
                    if hasattr(bar, "set_postfix"):
                        bar.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{val_loss:.4f}")
                if callback is not None:
                    callback(record)
        if state.best_model:
            run.net.load_state_dict(state.best_model)
            if state.best_epoch < state.epoch:
                notes.append(f"kept epoch {state.best_epoch} of {state.epoch}: the lowest validation loss "
                             f"({state.best_val:.4f})")
        with timer("calibrate"):
            norm = _calibrate(run, data, settings)
        run.net.eval()
        if rank == 0:
            with timer("save"):
                sources = [*names, *(baseline_names or {}).values()]
                summary = {"settings": settings.to_dict(), "sources": sources, "n_train": len(data.corners),
                           "n_val": len(data.val_corners), "x_val": data.x_val, "x_split": data.x_split,
                           "target_z": int(data.target.shape[0]), "epochs": len(state.history),
                           "geometry": geometry, "init": settings.init,
                           "best_epoch": state.best_epoch or None,
                           "final": state.history[-1] if state.history else None, "world_size": world}
                save_model(out_path, run.net, norm, data.patch, summary)
                if state.history:
                    _plot_losses(png_path, state.history)
        if distributed:
            dist.barrier()
        train_s = timer.seconds.get("train", 0.0)
        return {"history": state.history, "timings": dict(timer.seconds), "notes": notes,
                "samples_per_s": samples / train_s if train_s > 0 and samples else float("nan"),
                "n_train": len(data.corners), "n_val": len(data.val_corners), "steps": state.step,
                "best_epoch": state.best_epoch or None, "network": run.net, "normalisation": norm,
                "model_path": str(out_path), "world_size": world}
    finally:
        if inited:
            dist.destroy_process_group()

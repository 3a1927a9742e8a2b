"""Training: NPCC loss, Adam with the polynomial schedule, a checkpoint every epoch, resume,
data-parallel over processes launched by torchrun (gloo on CPU, NCCL on CUDA).

Determinism: the network is initialised from ``seed``; epoch ``e`` shuffles and flips with a
generator seeded by ``(seed, e)``, so a run resumed from the checkpoint of epoch ``e`` continues
exactly like an uninterrupted one.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
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
from ..nn.unet import Preset, Variant
from ..progress import progress
from ..runinfo import Timer
from .data import PatchPairs, prepare_pairs
from .loss import npcc, poly_lr

log = logging.getLogger("rapidtomo.train")

# settings that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = {"epochs", "device"}


class TrainSettings(Settings):
    """Settings of ``rapidtomo train`` (section ``[train]``)."""

    preset: Preset = Field("small", description="network/patch preset: small (16×16 patches, depth 3, "
                           "widths 8·2^l, CPU-sized) or paper (64×64, depth 4, widths 32·2^l)")
    variant: Variant = Field("E", description="architecture of the ablation family A–G (E = RAPID)")
    widths: list[int] | None = Field(None, description="override: channels per encoder level (depth = length)")
    rates: list[int] | None = Field(None, description="override: in-plane atrous rates (default: preset's, "
                                    "paper's (6, 12, 18) scaled by patch/64)")
    z_rates: list[int] | None = Field(None, description="override: (a1, a2) z dilations of the anisotropic module")
    norm: Norm | None = Field(None, description="override: normalisation (batch, instance, group, none)")
    patch: int | None = Field(None, ge=4, description="approximant patch in y and x (target patches are 2x); "
                              "default: the preset's")
    overlap: float = Field(0.5, ge=0, lt=1, description="overlap fraction of neighbouring patches (paper: 0.5)")
    train_fraction: float = Field(0.6, gt=0, lt=1, description="x < fraction·X is the training part, the rest "
                                  "is held out for testing")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of the training patches kept for validation")
    flips: bool = Field(True, description="random flips along y and x (the same for input and target)")
    epochs: int = Field(30, ge=1, description="passes over the training patches (paper: 200)")
    batch_size: int = Field(2, ge=1, description="patches per step and process (paper: 2)")
    lr_start: float = Field(2e-4, gt=0, description="initial learning rate lr(0) (Eq. 12)")
    lr_end: float = Field(5e-5, ge=0, description="final learning rate lr(end) (Eq. 12)")
    lr_power: float = Field(0.5, gt=0, description="power p of the polynomial decay (Eq. 12)")
    decay_steps: int | None = Field(None, ge=1, description="decay steps T (paper: 3e4); default: all steps")
    seed: int = Field(0, description="seed of initialisation, shuffling and flips")
    device: str = Field("auto", description="torch device: auto, cpu, cuda (with torchrun: cuda:LOCAL_RANK)")
    amp: bool = Field(True, description="mixed precision (bfloat16, else float16 with loss scaling) on CUDA")
    channels_last: bool = Field(True, description="channels-last-3d memory format on CUDA")

    def network_settings(self) -> NetworkSettings:
        """The preset's settings for ``variant`` with the overrides applied."""
        base = network_preset(self.preset, self.variant, norm=self.norm or "batch")
        over = {k: getattr(self, k) for k in ("widths", "rates", "z_rates") if getattr(self, k) is not None}
        return base.model_copy(update=over) if over else base

    def patch_size(self) -> int:
        return self.patch or preset_patch(self.preset)


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


def _save_checkpoint(path: Path, net, opt, scaler, epoch: int, step: int, history: list, settings: TrainSettings,
                     norm: dict) -> None:
    obj = {"format": "rapidtomo-checkpoint", "epoch": epoch, "step": step,
           "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
           "optimizer": opt.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
           "history": json.dumps(history), "settings": settings.model_dump_json(), "norm": json.dumps(norm)}
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
    old = json.loads(ck["settings"])
    new = settings.to_dict()
    changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k])
    if changed:
        raise UserError(f"{path}: checkpoint was made with different settings ({', '.join(changed)}); "
                        f"resume with the same settings or train afresh")
    if any(abs(json.loads(ck["norm"])[k] - norm[k]) > 1e-6 * max(1.0, abs(norm[k])) for k in norm):
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


def _evaluate(net, data: PatchPairs, idx: np.ndarray, batch: int, device, amp_ctx) -> tuple[float, list]:
    """Mean NPCC over patches ``idx`` (eval mode) and the (prediction, target) pairs on CPU."""
    net.eval()
    losses, pairs = [], []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            x, y = data.batch(idx[s:s + batch])
            with amp_ctx():
                out = net(x.to(device)).float().cpu()
            losses.append(float(npcc(out, y)) * len(x))
            pairs.append((out, y))
    net.train()
    return (sum(losses) / len(idx) if len(idx) else float("nan")), pairs


def train(approximant: Volume, target: Volume, settings: TrainSettings, out_path: str | Path,
          resume: bool = False, callback: Callable[[dict], None] | None = None,
          names: tuple[str, str] = ("approximant", "target")) -> dict[str, Any]:
    """Train the network on ``approximant`` ``(Za, Y, X)`` → ``target`` ``(Zg, 2Y, 2X)`` and write
    the model file ``out_path`` (plus checkpoint, CSV log and loss curve beside it).

    Under torchrun (``WORLD_SIZE > 1``) every process runs this with the same arguments; the
    patches of each epoch are sharded over the processes and gradients averaged (DDP); process 0
    writes the files. ``callback(record)`` is called after each epoch's checkpoint.

    Returns a dict: ``history`` (per-epoch records), ``timings`` (s), ``samples_per_s``,
    ``n_train``/``n_val`` patches, ``notes``, ``network`` (the trained module, eval mode),
    ``normalisation`` and ``model_path``.
    """
    out_path = Path(out_path)
    timer = Timer()
    distributed, rank, world, device, inited = _dist_setup(settings)
    try:
        with timer("prepare"):
            patch = settings.patch_size()
            data, notes = prepare_pairs(approximant, target, patch, settings.overlap, settings.train_fraction, names)
            n = len(data.corners)
            order = np.random.default_rng(settings.seed).permutation(n)
            n_val = min(int(round(settings.val_fraction * n)), n - 1)
            val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
            torch.manual_seed(settings.seed)
            net = build_network(settings.network_settings()).to(device)
            cuda = device.type == "cuda"
            if cuda and settings.channels_last:
                net = net.to(memory_format=torch.channels_last_3d)
            amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
            use_amp = cuda and settings.amp

            def amp_ctx():
                return torch.autocast("cuda", dtype=amp_dtype, enabled=use_amp) if cuda else torch.autocast(
                    "cpu", enabled=False)

            scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
            opt = torch.optim.Adam(net.parameters(), lr=settings.lr_start)
            per_rank = math.ceil(len(train_idx) / world)
            steps_per_epoch = math.ceil(per_rank / settings.batch_size)
            total_steps = settings.decay_steps or settings.epochs * steps_per_epoch
            ckpt = checkpoint_path(out_path)
            start_epoch, step, history = 0, 0, []
            if resume and ckpt.is_file():
                ck = _load_checkpoint(ckpt, settings, data.norm)
                net.load_state_dict(ck["model"])
                opt.load_state_dict(ck["optimizer"])
                if ck["scaler"] and scaler.is_enabled():
                    scaler.load_state_dict(ck["scaler"])
                start_epoch, step, history = int(ck["epoch"]), int(ck["step"]), json.loads(ck["history"])
                notes.append(f"resumed from {ckpt} at epoch {start_epoch}, step {step}")
                log.warning(notes[-1])
            elif resume:
                notes.append(f"no checkpoint {ckpt}: training from scratch")
                log.warning(notes[-1])
            model = (torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if cuda else None)
                     if distributed else net)
        csv_path, png_path = log_paths(out_path)
        samples = 0
        epochs = range(start_epoch, settings.epochs)
        bar = progress(epochs, "train", unit="epoch") if rank == 0 else epochs
        with timer("train"):
            for epoch in bar:
                t0 = time.perf_counter()
                g = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)
                perm = train_idx[torch.randperm(len(train_idx), generator=g).numpy()]
                flips = torch.rand(len(perm), 2, generator=g) < 0.5
                reps = np.resize(np.arange(len(perm)), per_rank * world)  # equal shares: wrap around
                mine = reps[rank::world]
                total, count = 0.0, 0
                for s in range(0, len(mine), settings.batch_size):
                    sel = mine[s:s + settings.batch_size]
                    x, y = data.batch(perm[sel], flips[sel] if settings.flips else None)
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    if cuda and settings.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last_3d)
                    for group in opt.param_groups:
                        group["lr"] = poly_lr(step, total_steps, settings.lr_start, settings.lr_end, settings.lr_power)
                    with amp_ctx():
                        out = model(x)
                    loss = npcc(out.float(), y)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    step += 1
                    total += float(loss.detach()) * len(sel)
                    count += len(sel)
                stats = torch.tensor([total, count], dtype=torch.float64)
                if distributed:
                    dist.all_reduce(stats)  # gloo/nccl: sums over processes
                samples += int(stats[1])
                if distributed:  # batch-norm running statistics are per process: take rank 0's
                    for buf in net.buffers():
                        dist.broadcast(buf, 0)
                val_loss = (_evaluate(net, data, val_idx, settings.batch_size, device, amp_ctx)[0]
                            if rank == 0 else float("nan"))
                record = {"epoch": epoch + 1, "step": step, "lr": poly_lr(step, total_steps, settings.lr_start,
                                                                          settings.lr_end, settings.lr_power),
                          "train_loss": float(stats[0] / stats[1]), "val_loss": val_loss,
                          "seconds": round(time.perf_counter() - t0, 3)}
                history.append(record)
                if rank == 0:
                    _save_checkpoint(ckpt, net, opt, scaler, epoch + 1, step, history, settings, data.norm)
                    _write_csv(csv_path, history)
                    if hasattr(bar, "set_postfix"):
                        bar.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{val_loss:.4f}")
                if callback is not None:
                    callback(record)
        with timer("calibrate"):
            # NPCC fixes the output only up to an affine map: fit target ≈ a·out + b on the training
            # patches (normalised units), then fold in the target's normalisation → radians
            _, pairs = _evaluate(net, data, train_idx, settings.batch_size, device, amp_ctx)
            o = torch.cat([p[0].flatten() for p in pairs]).double()
            t = torch.cat([p[1].flatten() for p in pairs]).double()
            var = float(((o - o.mean()) ** 2).mean())
            a = float(((o - o.mean()) * (t - t.mean())).mean()) / var if var > 0 else 0.0
            b = float(t.mean()) - a * float(o.mean())
            norm = {"input_mean": data.norm["input_mean"], "input_std": data.norm["input_std"],
                    "output_scale": a * data.norm["target_std"],
                    "output_offset": b * data.norm["target_std"] + data.norm["target_mean"]}
        net.eval()
        if rank == 0:
            with timer("save"):
                summary = {"settings": settings.to_dict(), "sources": list(names), "n_train": int(len(train_idx)),
                           "n_val": int(len(val_idx)), "x_split": data.x_split, "target_z": int(target.shape[0]), "epochs": len(history),
                           "final": history[-1] if history else None, "world_size": world}
                save_model(out_path, net, norm, patch, summary)
                if history:
                    _plot_losses(png_path, history)
        if distributed:
            dist.barrier()
        train_s = timer.seconds.get("train", 0.0)
        return {"history": history, "timings": dict(timer.seconds), "notes": notes,
                "samples_per_s": samples / train_s if train_s > 0 and samples else float("nan"),
                "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "steps": step, "network": net,
                "normalisation": norm, "model_path": str(out_path), "world_size": world}
    finally:
        if inited:
            dist.destroy_process_group()

"""The approximant: a few gradient steps on the joint multislice ptycho-tomographic loss (Eq. 3–8).

Unknown: a pure-phase volume φ ``(n_slabs, Y/2, X/2)`` on a grid 2x coarser in y and x than the
scan's nominal object grid, with the same physical extent (so a golden standard on the nominal
grid pairs with it voxel for voxel, x2 in y and x). Each angle θ: the operator H_θ
(:class:`rapidtomo.physics.operator.PtychoTomoOperator` on the coarse grid, probe resampled to it)
rotates φ, cuts the sample's extent along the beam into L slabs (at θ = 0 slab l is z-sample l),
makes t = exp(−i·φ_slab), propagates it through the multislice model, and is compared with the
central half of the measured patterns:

    L(φ) = 1/(2·Nθ·Nj) · Σ_θ Σ_j ‖ Σ_m |u_θ,j,m|² − g_θ,j ‖²                      (Eq. 3)

with the residuals at bad detector pixels (the scan's ``detector_mask``) and at counts ≥ its
``saturation_level`` left out (:func:`rapidtomo.physics.detector.valid_pixels`). Scan positions
are taken as they are: fractional corners on the coarse grid move the probe by a Fourier sub-pixel
shift (:mod:`rapidtomo.physics.multislice`). The gradient (Eq. 4–8) comes from autograd, accumulated over batches of positions so memory stays
bounded, and summed over angles in float64. Under torchrun the angles are split into contiguous
blocks over the processes (:mod:`rapidtomo.distributed`); each sums its block's loss and gradient
and one ``all_reduce`` per evaluation adds them, so every process takes the same steps. The float64
sum of a few float32 terms is exact unless they differ by ~2^29 in size, so its order hardly matters:
2 processes gave the one-process volume bit for bit (docs/user-guide.md, "Running on several
processes/machines").

Memory does not grow with the scan: each process holds the patterns (and operators) of as many of
its angles as ``patterns_memory_gb`` allows and reads the others from the scan file, one angle at
a time, at every evaluation (:class:`CoarseAngles`); the result is the same.

Step size ("gd"): along −∇L, a trial step that changes the phase of the most sensitive voxel by
``trial_phase_rad``, then the minimum of the parabola through L(0), L'(0) and the trial,
accepted if it lowers the loss, else halved (backtracking). No per-data-set tuning: the trial is
in radians and the parabola adapts to the photon count. "adam" takes Adam steps of ``lr_rad``.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from ..config import Settings
from ..device import pick_device
from ..distributed import Processes, processes
from ..io import ScanData, Volume
from ..physics.detector import as_mask_tensor, valid_pixels
from ..physics.geometry import beam_grid
from ..physics.multislice import default_batch, far_field_intensity
from ..physics.operator import AngleOperator, PtychoTomoOperator, transmission
from ..physics.probe import crop_patterns_center, downsample_probe
from ..progress import progress


class ApproximantSettings(Settings):
    """Settings of ``rapidtomo approximant`` (section ``[approximant]``)."""

    iterations: int = Field(2, ge=1, description="gradient iterations k (the paper uses 2)")
    n_slabs: int = Field(5, ge=1, description="samples of the unknown along z and slabs L of the model (paper: 5)")
    output_slices: int | None = Field(
        None, ge=1, description="z samples of the dilated output (default: the nominal grid's Z)")
    optimizer: Literal["gd", "adam"] = Field("gd", description="gd: gradient descent with a parabolic line "
                                             "search; adam: Adam with lr_rad")
    trial_phase_rad: float = Field(0.1, gt=0, description="gd: trial step's largest phase change (rad)")
    lr_rad: float = Field(0.02, gt=0, description="adam: learning rate (rad per step)")
    batch_size: int | None = Field(None, ge=1, description="positions per batch (memory bound); default from size")
    patterns_memory_gb: float = Field(2.0, gt=0, description="most GB of (central-half) patterns held in memory "
                                      "per process, with their angles' rotation weights; the angles beyond it are "
                                      "read from the scan file in turn at every evaluation (slower, same result)")
    precision: Literal["float32", "float64"] = Field("float32", description="arithmetic precision")
    device: str = Field("auto", description="torch device: auto, cpu, cuda")

    @model_validator(mode="after")
    def _check(self):
        if self.output_slices is not None and self.output_slices < self.n_slabs:
            raise ValueError(f"output_slices = {self.output_slices} is fewer than n_slabs = {self.n_slabs}: the "
                             f"dilated output repeats each slab along z, so it needs at least n_slabs slices")
        return self


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass
class CoarseProblem:
    """Everything the loss needs, on the coarse grid: the operator, data and windows of each of
    this process's angles, the scan's angle count and the processes that share the sum."""

    angles: CoarseAngles  # (H_θ, patterns (N, h/2, w/2)) of each angle of this process
    top_left: torch.Tensor  # (this process's angles, N, 2) pixels on the coarse grid, float64
    n_angles: int  # Nθ of Eq. 3: the scan's angles, over all processes
    procs: Processes = dataclasses.field(default_factory=Processes)
    bad: torch.Tensor | None = None  # (h/2, w/2) bool, True = bad detector pixel
    saturation_level: float | None = None


class CoarseAngles:
    """This process's angles on the coarse grid: ``angles[a]`` is ``(H_θ, patterns)``, the angle's
    :class:`~rapidtomo.physics.operator.AngleOperator` and the central half of its patterns, an
    ``(N, h/2, w/2)`` tensor.

    The first angles whose patterns fit in ``memory_bytes`` are made once and held (``n_held``,
    with their operators' rotation weights); the others are read from ``intensities`` (a scan
    file's :class:`~rapidtomo.io.Patterns`, one angle at a time, or an array) and their operators
    built at every use, so at most ``memory_bytes`` of patterns plus one angle are in memory
    whatever the scan's size.
    """

    def __init__(self, intensities, op: PtychoTomoOperator, angles_rad: np.ndarray, indices: range,
                 memory_bytes: float):
        self.intensities, self.op, self.angles_rad, self.indices = intensities, op, angles_rad, indices
        n_pos, h, w = intensities.shape[1:]
        self.shape = (len(indices), n_pos, h // 2, w // 2)
        self.dtype = op.dtype
        self.angle_bytes = n_pos * (h // 2) * (w // 2) * op.dtype.itemsize
        self.n_held = min(len(indices), int(memory_bytes // self.angle_bytes))
        self.held = [self._patterns(a) for a in range(self.n_held)]

    def _patterns(self, a: int) -> torch.Tensor:
        patterns = crop_patterns_center(self.intensities[self.indices[a]])
        return torch.as_tensor(np.ascontiguousarray(patterns)).to(self.op.device, self.dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, a: int) -> tuple[AngleOperator, torch.Tensor]:
        theta = float(self.angles_rad[self.indices[a]])
        if a < self.n_held:
            return self.op.at(theta), self.held[a]
        return (AngleOperator(self.op.grid, theta, self.op.probe, self.op.wavelength_m, self.dtype),
                self._patterns(a))


def coarse_shape(volume_shape, n_slabs: int) -> tuple[int, int, int]:
    Z, Y, X = volume_shape
    return (n_slabs, (Y + 1) // 2, (X + 1) // 2)


def coarse_voxel(volume_shape, voxel_size_m, n_slabs: int) -> tuple[float, float, float]:
    Z, Y, X = volume_shape
    dz, dy, dx = voxel_size_m
    return (Z * dz / n_slabs, 2 * dy, 2 * dx)


def build_problem(scan: ScanData, settings: ApproximantSettings, device,
                  procs: Processes = Processes(), sample_shift_m: np.ndarray | None = None) -> CoarseProblem:
    """Reduce the scan to the coarse grid: central half of the patterns, probe, positions; only
    the angles of ``procs.share`` (all of them in one process) are kept, their patterns held up to
    ``settings.patterns_memory_gb`` (:class:`CoarseAngles`).

    ``sample_shift_m (n_angles, 2)``: the sample's shift (y, x') at each angle (an alignment's,
    :func:`rapidtomo.recon.two_step.alignment_record`); the probe then sat at ``positions − shift``
    relative to the sample (sub-pixel, as every position).
    """
    h, w = scan.intensities.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"pattern size {h}x{w} must be even to keep the central half")
    if procs.world > scan.n_angles:
        raise ValueError(f"{procs.world} processes for {scan.n_angles} angles: run at most {scan.n_angles}")
    mine = procs.share(scan.n_angles)
    window = (h // 2, w // 2)
    shape = coarse_shape(scan.volume_shape, settings.n_slabs)
    grid = beam_grid(shape, coarse_voxel(scan.volume_shape, scan.voxel_size_m, settings.n_slabs), window,
                     settings.n_slabs)
    positions = scan.positions_m
    if sample_shift_m is not None:
        positions = positions - np.asarray(sample_shift_m, dtype=np.float64)[:, None, :]
    grid = grid.covering(positions, window)
    top_left = grid.top_left(positions, window)[mine.start:mine.stop]
    real = _DTYPES[settings.precision]
    op = PtychoTomoOperator(grid, downsample_probe(scan.probe), scan.wavelength_m, device=device, dtype=real)
    angles = CoarseAngles(scan.intensities, op, np.deg2rad(scan.angles_deg), range(mine.start, mine.stop),
                          settings.patterns_memory_gb * 1e9)
    bad = None if scan.detector_mask is None else crop_patterns_center(scan.detector_mask)
    return CoarseProblem(angles, torch.as_tensor(top_left, device=device), int(scan.n_angles), procs,
                         as_mask_tensor(bad, device), scan.saturation_level)


def loss_and_grad(phi: torch.Tensor, prob: CoarseProblem, batch: int, with_grad: bool = True,
                  show: bool = False) -> tuple[float, torch.Tensor | None]:
    """Eq. 3 at φ ``(n_slabs, Yc, Xc)`` and, if asked, its gradient (same shape and dtype), batched
    over positions; summed in float64 over this process's angles, then over the processes."""
    n_ang, n_pos = prob.angles.shape[:2]
    norm = 1.0 / (2 * prob.n_angles * n_pos)
    total = 0.0
    grad = torch.zeros_like(phi, dtype=torch.float64) if with_grad else None
    angles = range(n_ang)
    if show and prob.procs.root:
        angles = progress(angles, desc="  angles", total=n_ang, unit="angle", leave=False)
    for a in angles:
        with torch.set_grad_enabled(with_grad):
            op, data = prob.angles[a]
            p = phi.detach().requires_grad_(with_grad)
            slabs = op.slab_phases(p)
            leaf = slabs.detach().requires_grad_(with_grad)
            for i in range(0, n_pos, batch):
                t = transmission(leaf)
                pred = far_field_intensity(op.multislice.exit_waves(t, prob.top_left[a, i:i + batch]))
                g = data[i:i + batch]
                weight = valid_pixels(g, prob.bad, prob.saturation_level)
                loss = norm * ((pred - g) ** 2 if weight is None else (pred - g) ** 2 * weight).sum()
                if with_grad:
                    loss.backward()
                total += float(loss.detach())
            if with_grad:
                slabs.backward(leaf.grad)
                grad += p.grad
    if prob.procs.world == 1:
        return total, None if grad is None else grad.to(phi.dtype)
    parts = [torch.tensor([total], dtype=torch.float64, device=phi.device)]
    if with_grad:
        parts.append(grad.reshape(-1))
    flat = prob.procs.sum(torch.cat(parts))
    return float(flat[0]), flat[1:].reshape(phi.shape).to(phi.dtype) if with_grad else None


def approximant(scan: ScanData, settings: ApproximantSettings | None = None,
                sample_shift_m: np.ndarray | None = None) -> Volume:
    """The approximant of a (reduced-angle) scan, dilated along z; see the module docstring.

    ``sample_shift_m (n_angles, 2)``: the sample's shift (y, x') at each angle, as an alignment of
    the same scan found it (the two-step baseline's; :func:`build_problem`), or None.

    Returns a :class:`Volume` ``(output_slices, Y/2, X/2)`` of phase per voxel (rad) with voxel
    sizes ``(Z·dz/output_slices, 2·dy, 2·dx)``; attrs hold the coarse volume's slab count, the
    loss per iteration (``loss_history``, index 0 = before the first step) and timings.

    Under torchrun every process calls this with the same scan and settings, computes its block
    of angles and returns the same volume (``attrs["world_size"]`` processes); the caller writes
    it from rank 0 only.
    """
    settings = settings or ApproximantSettings()
    with processes(pick_device(settings.device)) as (procs, device):
        return _approximant(scan, settings, procs, device, sample_shift_m)


def _approximant(scan: ScanData, settings: ApproximantSettings, procs: Processes, device,
                 sample_shift_m: np.ndarray | None) -> Volume:
    """:func:`approximant` on this process's share of the angles, on ``device``."""
    t0 = time.perf_counter()
    prob = build_problem(scan, settings, device, procs, sample_shift_m)
    probe = prob.angles.op.probe
    batch = settings.batch_size or default_batch(probe.shape[0], probe.shape[-2:], settings.n_slabs)
    phi = torch.zeros(coarse_shape(scan.volume_shape, settings.n_slabs), dtype=prob.angles.dtype, device=device)
    history, step_sizes = [], []
    adam = torch.optim.Adam([phi.requires_grad_()], lr=settings.lr_rad) if settings.optimizer == "adam" else None
    step = None
    iterations = range(settings.iterations)
    if procs.root:
        iterations = progress(iterations, desc="approximant", total=settings.iterations, unit="iter")
    for _ in iterations:
        loss, grad = loss_and_grad(phi, prob, batch, show=True)
        history.append(loss)
        if adam is not None:
            adam.zero_grad()
            phi.grad = grad
            adam.step()
            continue
        step = _line_search(phi, grad, loss, prob, batch, settings.trial_phase_rad, step)
        step_sizes.append(step)
        with torch.no_grad():
            phi -= step * grad
    history.append(loss_and_grad(phi.detach(), prob, batch, with_grad=False)[0])
    elapsed = time.perf_counter() - t0
    coarse = phi.detach().cpu().numpy()
    n_out = settings.output_slices or scan.volume_shape[0]
    Z, _, _ = scan.volume_shape
    dz = Z * scan.voxel_size_m[0] / n_out
    _, dyc, dxc = coarse_voxel(scan.volume_shape, scan.voxel_size_m, settings.n_slabs)
    attrs = {"quantity": "phase_rad_per_voxel", "stage": "approximant", "n_slabs": settings.n_slabs,
             "iterations": settings.iterations, "loss_history": [float(v) for v in history],
             "step_sizes": [float(s) for s in step_sizes], "seconds": elapsed, "n_angles": int(scan.n_angles),
             "world_size": procs.world, "settings": settings.to_dict()}
    return Volume(dilate_z(coarse, n_out), (dz, dyc, dxc), attrs)


def _line_search(phi, grad, loss0, prob, batch, trial_phase, previous):
    """Step size along −grad: a trial step, the parabola's minimum, then halving until the loss drops."""
    gnorm2 = float((grad.double() ** 2).sum())
    gmax = float(grad.abs().max())
    if gmax == 0:
        return 0.0

    def at(s):
        return loss_and_grad(phi - s * grad, prob, batch, with_grad=False)[0]

    s1 = previous or trial_phase / gmax
    l1 = at(s1)
    curvature = 2 * (l1 - loss0 + s1 * gnorm2) / s1**2
    s2 = min(gnorm2 / curvature, 4 * s1) if curvature > 0 else 4 * s1
    l2 = at(s2)
    best_s, best_l = (s2, l2) if l2 <= l1 else (s1, l1)
    while best_l >= loss0 and best_s > 1e-6 * s1:
        best_s /= 4
        best_l = at(best_s)
    return best_s if best_l < loss0 else 0.0


def dilate_z(coarse: np.ndarray, n_out: int) -> np.ndarray:
    """Repeat each of the L z-samples over its share of ``n_out`` slices (the paper's dilation).

    Each sample's phase is divided among its copies, so line integrals along z are kept exactly.
    """
    L = coarse.shape[0]
    idx = np.minimum((np.arange(n_out) * L) // n_out, L - 1)
    copies = np.bincount(idx, minlength=L)
    if np.any(copies == 0):
        raise ValueError(f"cannot dilate {L} slabs to {n_out} slices (need n_out >= L)")
    return (coarse[idx] / copies[idx, None, None]).astype(np.float32)

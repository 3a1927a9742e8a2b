"""Memory and time estimates of a stage before it runs (printed by every stage, and alone by ``--dry-run``).

Every stage function in :mod:`rapidtomo.stages` calls one ``estimate_<stage>`` function here and
:func:`check_fits`: a stage whose estimated peak memory exceeds the memory available stops at once
(:class:`~rapidtomo.errors.UserError`, exit 2) with a line saying what to change.

These are **estimates**: memory from the array sizes the stage holds (bytes counted, factors
for autograd's saved tensors measured once on small problems, see ``tests/test_estimate.py``);
time from a calibration of the stage's kernel on this machine, run here in well under a second
on the small default problems (a few multislice patterns with and without gradient, one
training step, one network window), times the stage's count of such operations. Load from
other processes, caches and Python overheads are not modelled; the printed numbers say so.
Scans are written and read one angle at a time (:class:`rapidtomo.io.ScanWriter`,
:class:`rapidtomo.io.Patterns`), so a stage's working set counts the angles it holds at once
(set by its settings: ``patterns_memory_gb``, ``probe_angles``, ``workers``), not the whole scan.
Calibrations draw from their own generators and leave torch's global random state as it was, so
a stage gives the same result with or without its estimate.
The memory available is ``RAPIDTOMO_MEMORY_LIMIT`` (bytes, e.g. ``8e9``) if set, else the
system's available memory (psutil, or ``MemAvailable`` of ``/proc/meminfo``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .device import pick_device
from .errors import UserError

MEMORY_LIMIT_ENV = "RAPIDTOMO_MEMORY_LIMIT"
# resident memory of a Python process that has imported torch and rapidtomo and run a calibration (measured:
# 0.30-0.32 GB peak, VmHWM, on the 2-core CPU machine with the torch CPU build; rounded up); once per process
PROCESS_BYTES = 350e6


@dataclass(frozen=True)
class ScanShape:
    """The sizes of a scan that the estimates need (no patterns read)."""

    n_angles: int
    n_pos: int
    window: tuple[int, int]  # pattern size (h, w)
    n_modes: int
    volume_shape: tuple[int, int, int]  # nominal object grid (Z, Y, X)
    angles_deg: tuple[float, ...]

    @property
    def scan_bytes(self) -> int:
        """Bytes of the float32 patterns ``(n_angles, n_pos, h, w)``."""
        return self.n_angles * self.angle_bytes

    @property
    def angle_bytes(self) -> int:
        """Bytes of one angle's float32 patterns ``(n_pos, h, w)``: what a stage reads at a time."""
        return 4 * self.n_pos * self.window[0] * self.window[1]

    @classmethod
    def from_file(cls, path: str | Path) -> "ScanShape":
        """The shapes of a scan file's datasets (read without loading them); a malformed file is
        :func:`rapidtomo.io.read_scan`'s one-line :class:`UserError`."""
        import h5py
        if not Path(path).is_file():
            raise UserError(f"{path}: file not found")
        try:
            with h5py.File(path, "r") as f:
                n_ang, n_pos, h, w = f["/entry/data/intensities"].shape
                probe = f["/entry/probe"].shape
                vshape = tuple(int(v) for v in np.ravel(f["/entry/sample/volume_shape"][()]))
                angles = tuple(float(a) for a in np.ravel(f["/entry/data/angles_deg"][()]))
        except (OSError, KeyError, ValueError, TypeError):
            from .io import read_scan
            read_scan(path)  # names the file's problem in one line (UserError)
            raise UserError(f"{path}: not a readable scan file (docs/formats.md)") from None
        return cls(int(n_ang), int(n_pos), (int(h), int(w)), int(probe[0]) if len(probe) == 3 else 1, vshape,
                   angles)


@dataclass
class Estimate:
    """A stage's estimate: bytes by part, the peak of one process, the time and how it was got."""

    stage: str
    parts: dict[str, float]  # bytes held at the peak, by what holds them
    seconds: float
    basis: str  # how the time was estimated
    fix: str  # what to change when it does not fit
    processes: int = 1  # processes that each hold `peak_bytes` (workers, torchrun ranks)

    @property
    def peak_bytes(self) -> float:
        """Estimated peak resident memory of one process (bytes)."""
        return sum(self.parts.values())

    @property
    def total_bytes(self) -> float:
        """Estimated peak of all the stage's processes on this machine (bytes)."""
        return self.peak_bytes * self.processes

    def text(self) -> str:
        """The estimate in one line (what every stage and ``--dry-run`` print)."""
        parts = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in self.parts.items())
        per = f" per process × {self.processes}" if self.processes > 1 else ""
        return (f"[{self.stage}] estimate: peak {fmt_bytes(self.peak_bytes)}{per} ({parts}); "
                f"time ~{fmt_seconds(self.seconds)} ({self.basis})")


def fmt_bytes(n: float) -> str:
    """``n`` bytes in GB, MB, kB or B (decimal units, 3 significant digits)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s: float) -> str:
    """``s`` seconds in h, min or s (2 significant digits)."""
    if s >= 3600:
        return f"{s / 3600:.2g} h"
    if s >= 60:
        return f"{s / 60:.2g} min"
    return f"{s:.2g} s"


def available_bytes() -> float | None:
    """Memory available to this run (bytes): ``RAPIDTOMO_MEMORY_LIMIT``, else the system's; None if unknown."""
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        try:
            return float(env)
        except ValueError:
            raise UserError(f"{MEMORY_LIMIT_ENV}={env!r}: must be a number of bytes, e.g. 8e9") from None
    try:
        import psutil
        return float(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(est: Estimate, available: float | None = None) -> None:
    """Raise :class:`UserError` (one line, with the fix) if the estimated peak exceeds the memory available."""
    available = available_bytes() if available is None else available
    if available is not None and est.total_bytes > available:
        who = f" ({est.processes} processes)" if est.processes > 1 else ""
        raise UserError(f"[{est.stage}] needs about {fmt_bytes(est.total_bytes)}{who} but {fmt_bytes(available)} "
                        f"is available (estimate; {MEMORY_LIMIT_ENV} overrides): {est.fix}")


def preflight(est: Estimate) -> Estimate:
    """Print the estimate (rank 0 only under torchrun), then :func:`check_fits`; returns ``est``."""
    from .distributed import env_rank
    if env_rank() == 0:
        print(est.text(), flush=True)
    check_fits(est)
    return est


# ---------------------------------------------------------------- calibrations (this machine)

def _best_of(fn, repeats: int = 2) -> float:
    fn()  # warm-up (FFT plans, allocator)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def multislice_seconds(n_modes: int, window: tuple[int, int], n_slices: int, grad: bool,
                       dtype: torch.dtype = torch.float32, device="cpu", n: int = 8) -> float:
    """Measured seconds per pattern of the torch multislice model (forward, or forward + backward),
    on ``n`` patterns at once on ``device``."""
    from .physics.multislice import Multislice, far_field_intensity
    from .physics.operator import transmission
    h, w = window
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    ms = Multislice(torch.ones((n_modes, h, w), dtype=cdtype), wavelength_m=1.4e-10, pixel_size_m=1e-8,
                    slice_spacing_m=1e-7)
    g = torch.Generator().manual_seed(0)
    phase = torch.rand((n_slices, h + n, w + n), dtype=dtype, generator=g).to(device)
    pos = torch.stack([torch.arange(n), torch.arange(n)], 1).to(device)

    def run():
        p = phase.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = far_field_intensity(ms.exit_waves(transmission(p), pos)).sum()
            if grad:
                out.backward()
        if phase.device.type == "cuda":
            torch.cuda.synchronize(phase.device)
    return _best_of(run) / n


def network_profile(net: torch.nn.Module, shape: tuple[int, ...], grad: bool) -> tuple[float, float]:
    """(seconds, activation bytes) of one network call on a random batch of ``shape`` ``(B, Z, wy,
    wx)`` windows of the approximant grid, with the network's inputs (its full-resolution ones
    2x finer), with backward if ``grad``; measured: the bytes are the sum of every leaf module's
    output (what autograd keeps for backward; an upper bound of what a forward without gradient
    holds at once)."""
    b, z, wy, wx = shape
    g = torch.Generator().manual_seed(0)
    s = net.settings
    x = (torch.randn((b, len(s.coarse_inputs), z, wy, wx), generator=g),
         torch.randn((b, len(s.fine_inputs), z, 2 * wy, 2 * wx), generator=g))
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel() * o.element_size()))
             for m in net.modules() if not list(m.children())]

    def run():
        sizes.clear()
        with torch.set_grad_enabled(grad):
            out = net(*x)
            if grad:
                out.square().mean().backward()
    try:
        with torch.random.fork_rng(devices=[]):  # e.g. dropout draws
            seconds = _best_of(run, repeats=1)
    finally:
        for h in hooks:
            h.remove()
    return seconds, float(sum(sizes))


# ---------------------------------------------------------------- one function per stage

def estimate_approximant(scan: ScanShape, settings, world: int = 1) -> Estimate:
    """The approximant (:mod:`rapidtomo.recon.approximant`) of ``scan`` over ``world`` processes.

    Per process: one angle of the scan as read from the file (stages read scans one angle at a
    time), its share of the central-half patterns up to ``patterns_memory_gb`` (the angles beyond
    it are read again at every evaluation) plus the one being read, the rotation weights of those
    angles (4 int64 indices + 4 weights per beam sample), the rotation's gather of the most
    oblique angle (with its autograd copy), the unknown with its float64 gradient, and one batch's autograd tensors (per position about ``(3·L + 4)·M + 5·L + 4``
    complex fields of the half window, L slabs, M modes: the slope measured in tests/test_estimate.py,
    and the part that does not grow with M measured at 64² windows, one mode, 1.4 MB per position).
    Time: the evaluations (one gradient and ~3 losses per iteration, one final loss) × patterns,
    at calibrated per-pattern rates.
    """
    from .physics.geometry import beam_grid
    from .physics.multislice import default_batch
    from .recon.approximant import coarse_shape, coarse_voxel
    real = 8 if settings.precision == "float64" else 4
    h, w = scan.window[0] // 2, scan.window[1] // 2
    L = settings.n_slabs
    share = math.ceil(scan.n_angles / world)
    shape = coarse_shape(scan.volume_shape, L)
    grid = beam_grid(shape, coarse_voxel(scan.volume_shape, (1.0, 1.0, 1.0), L), (h, w), L)
    n_beams = [grid.beam_sampling(float(np.deg2rad(a)))[0] for a in scan.angles_deg]
    batch = settings.batch_size or default_batch(scan.n_modes, (h, w), L)
    batch = min(batch, scan.n_pos)
    vol = math.prod(shape)
    half_angle = scan.n_pos * h * w * real
    held = min(share, int(settings.patterns_memory_gb * 1e9 // half_angle))
    parts = {
        "process": PROCESS_BYTES,
        "scan (one angle read)": scan.angle_bytes,
        "patterns (half window)": (held + (held < share)) * half_angle,
        "rotation": 4 * (8 + real) * grid.width * sum(sorted(n_beams)[-min(share, held + 1):])
        + 3 * 4 * real * max(n_beams) * grid.width * shape[1],
        "unknown and gradient": vol * (3 * real + 2 * 8),
        "batch autograd": batch * h * w * 2 * real * ((3 * L + 4) * scan.n_modes + 5 * L + 4)
        + 3 * L * grid.slice_shape[0] * grid.slice_shape[1] * 2 * real,
    }
    dtype = torch.float64 if settings.precision == "float64" else torch.float32
    n = min(batch, 64)  # per-call overheads dominate tiny batches
    device = pick_device(settings.device)
    t_grad = multislice_seconds(scan.n_modes, (h, w), L, True, dtype, device, n=n)
    t_fwd = multislice_seconds(scan.n_modes, (h, w), L, False, dtype, device, n=n)
    patterns = share * scan.n_pos
    evals = settings.iterations * (t_grad + 3 * t_fwd) + t_fwd
    seconds = evals * patterns
    basis = (f"calibrated here: {1 / t_grad:.3g} patterns/s with gradient, {1 / t_fwd:.3g} without, "
             f"{patterns} patterns per process")
    if held < share:
        basis += (f"; {share - held} of {share} angles re-read from the file at every evaluation "
                  f"(patterns_memory_gb), not counted")
    largest = max((k for k in parts if k != "process"), key=parts.get)
    fix = {"batch autograd": f"set [approximant] batch_size below {batch}",
           "patterns (half window)": "set [approximant] patterns_memory_gb lower (angles beyond it are read from "
                                     "the file at every evaluation)",
           "scan (one angle read)": "one angle's patterns do not fit: use a machine with more memory",
           }.get(largest, "spread the angles over processes on more machines (torchrun --nnodes), or use a "
                          "smaller volume_shape")
    return Estimate("approximant", parts, seconds, basis, fix, processes=world)


def simulated_scans(settings) -> tuple[ScanShape, ScanShape]:
    """(nominal, reduced) :class:`ScanShape` that :func:`rapidtomo.simulate.simulate` would write."""
    from .physics.geometry import beam_grid
    from .physics.scanning import scan_positions
    n = settings.detector_size
    voxel = (settings.voxel_size_m,) * 3
    grid = beam_grid(tuple(settings.shape), voxel, (n, n), settings.n_slabs, multiple=4)
    n_pos = len(scan_positions(grid.slice_shape, (n, n), settings.scan_steps_px, pattern=settings.scan_pattern))
    from .physics.geometry import angle_set_deg
    theta_nominal = settings.theta_max_nominal_deg or settings.theta_max_deg
    return tuple(ScanShape(k, n_pos, (n, n), settings.n_modes, tuple(settings.shape),
                           tuple(float(a) for a in angle_set_deg(k, theta)))
                 for k, theta in ((settings.n_nominal, theta_nominal), (settings.n_reduced, settings.theta_max_deg)))


def with_phantom_shape(settings, phantom_path):
    """The simulate settings with the shape and voxel of the phantom file, if one is given."""
    if not phantom_path:
        return settings
    from .io import open_volume
    with open_volume(phantom_path) as v:
        return settings.model_copy(update={"shape": tuple(v.shape), "voxel_size_m": v.voxel_size_m[2]})


def estimate_simulate(settings) -> Estimate:
    """:func:`rapidtomo.simulate.simulate`: the phantom (phase and attenuation), one angle's
    patterns (noiseless and noisy float32; the scans are written one angle at a time) and one
    angle's forward model. Time: the patterns at the
    calibrated forward rate of the fast model with ``n_slabs`` slabs (the fine model converges its
    slab count first and is slower: a lower bound then)."""
    nominal, reduced = simulated_scans(settings)
    n = settings.detector_size
    parts = {"process": PROCESS_BYTES, "phantom": 2 * 4 * math.prod(settings.shape),
             "patterns (one angle)": 2 * nominal.angle_bytes,
             "forward model (one angle)": 2.5e8 + 16 * nominal.n_pos * n * n}
    t = multislice_seconds(settings.n_modes, (n, n), settings.n_slabs, False, device=pick_device(settings.device))
    patterns = (nominal.n_angles + reduced.n_angles) * nominal.n_pos
    seconds = t * patterns
    basis = f"calibrated here: {1 / t:.3g} patterns/s (torch, no gradient), {patterns} patterns"
    if settings.model == "fine":
        basis += "; the fine model takes longer"
    return Estimate("simulate", parts, seconds, basis, "simulate a smaller shape or smaller patterns "
                    "(detector_size): the scans are written one angle at a time, the angle count does not matter")


def ptychography_seconds(n_modes: int, window: tuple[int, int], n_slices: int, batch_size: int, device,
                         threads: int | None = None) -> float:
    """Measured seconds per pattern update of per-angle ptychography
    (:func:`rapidtomo.recon.ptychography.reconstruct_angles`: multislice, loss, backward, Adam,
    the object's composition) on a small synthetic angle of two batches, with ``threads`` torch
    threads (the two-step workers run one each; default: as set)."""
    from .physics.geometry import beam_grid
    from .recon.ptychography import reconstruct_angles
    h, w = window
    grid = beam_grid((2, h, 2 * w), (1e-8, 1e-8, 1e-8), (h, w), n_slices)
    n = 2 * batch_size
    rng = np.random.default_rng(0)
    corners = np.stack([rng.uniform(0, grid.height - h, n), rng.uniform(0, grid.width - w, n)], 1).round()
    data = rng.uniform(0.5, 2.0, (1, n, h, w)).astype(np.float32)
    probe = np.ones((n_modes, h, w), np.complex64)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return _best_of(lambda: reconstruct_angles(data, probe, corners[None], grid, [0.0], 1.4e-10, epochs=2,
                                                   batch_size=batch_size, device=device)) / (2 * n)
    finally:
        torch.set_num_threads(before)


def estimate_two_step(scan: ScanShape, settings, stage: str = "golden", workers: int = 1) -> Estimate:
    """Per-angle ptychography then FBP/SART (:mod:`rapidtomo.recon.two_step`) with ``workers`` processes.

    Per process: the patterns of the angles in memory at once (the scan is read one angle at a
    time: the probe's ``probe_angles`` together, then one angle per worker, with its amplitudes;
    the parent holds two angles per worker in flight), the object slices with their Adam state,
    a batch's autograd fields, and the projections and volume. Time: every
    angle's epochs (plus the probe's joint epochs on ``probe_angles``) × positions at the
    per-pattern-update rate measured here (:func:`ptychography_seconds`, one thread per worker),
    over the workers; SART is not counted.
    """
    from .physics.geometry import beam_grid
    h, w = scan.window
    grid = beam_grid(scan.volume_shape, (1.0, 1.0, 1.0), (h, w), settings.n_slices)
    H, W = grid.slice_shape
    S = settings.n_slices
    Z, Y, X = scan.volume_shape
    angles = settings.probe_angles if settings.refine_probe else 1
    parts = {"process": PROCESS_BYTES, "patterns (angles in memory)": 2 * angles * scan.angle_bytes,
             "object and Adam state": 2 * S * H * W * 4 * 4,
             "batch autograd": min(settings.batch_size, scan.n_pos) * scan.n_modes * h * w * 8 * (3 * S + 4),
             "projections and volume": 4 * (scan.n_angles * Y * W + 3 * Z * Y * X)}
    if workers > 1:  # the parent holds two angles in flight per worker
        parts["patterns in flight (parent)"] = 2 * scan.angle_bytes
    device = pick_device(settings.device)
    t = ptychography_seconds(scan.n_modes, (h, w), S, min(settings.batch_size, scan.n_pos), device,
                             threads=1 if device.type == "cpu" and workers > 1 else None)
    probe = settings.probe_angles * settings.probe_epochs if settings.refine_probe else 0
    patterns = (scan.n_angles * settings.epochs + probe) * scan.n_pos
    seconds = t * patterns / workers
    basis = f"calibrated here: {1 / t:.3g} ptychography pattern updates/s per process, {patterns} updates"
    fix = f"set [{stage}] workers lower or batch_size lower, or use a machine with more memory"
    if max((k for k in parts if k != "process"), key=parts.get) == "patterns (angles in memory)":
        fix = f"set [{stage}] probe_angles lower, or use a machine with more memory"
    return Estimate(stage, parts, seconds, basis, fix, processes=workers)


def estimate_train(approx_shape, target_shape, settings, world: int = 1) -> Estimate:
    """Training (:func:`rapidtomo.train.train`) on volumes of these shapes, per process of ``world``.

    Memory: the volumes (approximant, target and the full-resolution inputs) as float32 twice
    (read and normalised), the network's parameters with
    gradients and Adam's two moments, and one step's activations (measured on a random batch:
    every leaf module's output, kept for backward) twice (their gradients). Time: the epochs'
    steps (the training patches over ``world`` processes, ``batch_size`` per step) at one
    measured step.
    """
    from .nn import build_network
    from .train.split import patch_starts, split_index
    p = settings.patch_size()
    Za, Ya, Xa = approx_shape
    with torch.random.fork_rng(devices=[]):  # the weights' draw leaves the global state as it was
        net = build_network(settings.network_settings(int(target_shape[0])))
    n_params = sum(t.numel() for t in net.parameters())
    t, act = network_profile(net, (settings.batch_size, Za, p, p), grad=True)
    n_patches = len(patch_starts(Ya, p, settings.overlap)) * len(
        patch_starts(split_index(Xa, settings.train_fraction), p, settings.overlap))
    steps = math.ceil(math.ceil(n_patches / world) / settings.batch_size)
    n_fine = len(net.settings.fine_inputs)  # full-resolution inputs: one target-sized volume each
    parts = {"process": PROCESS_BYTES,
             "volumes": 2 * 4 * (math.prod(approx_shape) + (1 + n_fine) * math.prod(target_shape)),
             "network and Adam": 4 * 4 * n_params, "activations": 2 * act}
    basis = f"measured here: {t:.3g} s per step, {steps} steps per epoch, at most {settings.epochs} epochs"
    return Estimate("train", parts, t * steps * settings.epochs, basis,
                    "set [train] batch_size or patch lower, or train on a GPU", processes=world)


def estimate_predict(net: torch.nn.Module, window: int, approx_shape, out_z: int, settings) -> Estimate:
    """Tiled inference (:func:`rapidtomo.infer.predict_file`): the network, a batch of windows'
    activations (measured: every leaf module's output, an upper bound without gradients) and one
    column band of input and output with its blending weights. Time: the windows' batches at one
    measured batch."""
    from .train.split import patch_starts
    Za, Ya, Xa = approx_shape
    n_params = sum(t.numel() for t in net.parameters())
    wy, wx = min(window, Ya), min(window, Xa)
    n_windows = len(patch_starts(Ya, wy, settings.overlap)) * len(patch_starts(Xa, wx, settings.overlap))
    b = min(settings.batch_size, n_windows)
    t, act = network_profile(net, (b, Za, wy, wx), grad=False)
    parts = {"process": PROCESS_BYTES, "network": 4 * n_params, "activations": act,
             "column band": 4 * (Za * Ya * wx * (1 + 4 * len(net.settings.fine_inputs)) + 3 * out_z * 4 * Ya * wx)}
    basis = f"measured here: {t:.3g} s per batch of {b} windows, {n_windows} windows"
    return Estimate("predict", parts, t * math.ceil(n_windows / b), basis,
                    "set [predict] batch_size or window lower")


def pipeline_estimates(ctx) -> Iterator[Estimate]:
    """The estimate of every stage that :func:`rapidtomo.pipeline.run_pipeline` would run in ``ctx``
    (a :class:`rapidtomo.pipeline.Context`), from its settings and input files alone: scans not
    yet simulated are sized from ``[simulate]``, volumes not yet made from the scans' grid. A
    generator: each stage is estimated (and calibrated) only when the previous one is taken."""
    from .distributed import env_world
    from .io import open_volume
    from .nn import build_network
    from .pipeline import baseline_methods, scan_paths
    from .recon.approximant import coarse_shape
    from .recon.two_step import n_workers
    p, s = ctx.pipeline, ctx.settings
    if p.scan_reduced:
        nominal_path, reduced_path = scan_paths(ctx)
        reduced = ScanShape.from_file(reduced_path)
        nominal = ScanShape.from_file(nominal_path) if nominal_path else None
    else:
        sim = with_phantom_shape(s["simulate"], p.phantom)
        yield estimate_simulate(sim)
        nominal, reduced = simulated_scans(sim)
    if not p.golden:
        workers = n_workers(s["golden"], pick_device(s["golden"].device))
        yield estimate_two_step(nominal, s["golden"], "golden", workers)
    for m in baseline_methods(p, s["train"]):
        yield estimate_two_step(reduced, s[m], m, n_workers(s[m], pick_device(s[m].device)))
    yield estimate_approximant(reduced, s["approximant"], env_world())
    Z, Y, X = reduced.volume_shape
    _, yc, xc = coarse_shape(reduced.volume_shape, s["approximant"].n_slabs)
    approx = (s["approximant"].output_slices or Z, yc, xc)
    if p.golden:
        with open_volume(p.golden) as g:
            target = tuple(g.shape)
    else:
        target = (Z, Y, X)
    yield estimate_train(approx, target, s["train"], env_world())
    with torch.random.fork_rng(devices=[]):
        net = build_network(s["train"].network_settings(target[0])).eval()
    window = s["predict"].window or s["train"].patch_size()
    yield estimate_predict(net, window, approx, s["predict"].z_slices or target[0], s["predict"])

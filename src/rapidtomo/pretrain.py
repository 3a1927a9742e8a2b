"""Pre-training: a prior that knows chips, learnt from simulated samples in the scan's geometry.

:func:`build_corpus` makes ``corpus_size`` samples in the acquisition geometry of a reduced scan
(:class:`CorpusGeometry`: energy, detector, probe, scan step, angles, θmax, photons, object grid
depth and voxel size): synthetic ICs whose layout statistics are drawn per sample
(:func:`sample_plan`) and, where gdstk is installed, sky130 standard-cell blocks; it simulates
each sample's reduced scan with the full simulator (:func:`rapidtomo.simulate.make_scan`, the
reference model with Poisson noise) and computes its approximant with the approximant settings
that the real scan gets. Samples are made in parallel processes (one torch thread each) and
cached on disk, one HDF5 file per sample written atomically (``sample_0000.h5``: ``/truth``
``(Z, Y, X)`` and ``/approximant`` ``(Z', Y/2, X/2)``, phase per voxel in rad, with voxel sizes,
seed, kind, parameters and timings as attributes), so a killed run resumes with the samples it
has. ``manifest.json`` records the seeds, settings, geometry and the exclusions.

:func:`pretrain` then trains the network on the corpus's (approximant → truth) pairs
(:func:`corpus_pairs`; whole samples are held out for validation) and writes a model file whose
``training`` record holds the geometry it is valid for (:mod:`rapidtomo.validity`) and the
corpus's provenance. ``rapidtomo train --init MODEL`` fine-tunes it on a golden standard;
``rapidtomo predict MODEL`` applies it zero-shot.

The sample under test is never in the corpus: corpus seeds skip the ``exclude_seeds`` (the
pipeline's ``[simulate]`` seed), the manifest records the content hash (sha256) of each sample's
truth and of the scan the geometry came from, and :func:`check_disjoint` refuses a corpus
holding a given volume. The held-out region of a run is part of that run's sample, so it is
not in the corpus either.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from pydantic import Field, field_validator

from .config import Settings
from .errors import UserError
from .io import ScanData, Volume
from .io.atomic import atomic_path
from .io.scan import mean_photons
from .progress import progress
from .runinfo import Timer, write_run_info
from .validity import scan_geometry

log = logging.getLogger("rapidtomo.pretrain")

MANIFEST = "manifest.json"
CORPUS_FORMAT = "rapidtomo-corpus"


class PretrainSettings(Settings):
    """Settings of ``rapidtomo pretrain`` (section ``[pretrain]``)."""

    enabled: Literal["auto", "on", "off"] = Field(
        "auto", description="pipeline: on, off, or auto (on when a pre-trained model for the geometry exists "
        "or the corpus's estimated cost fits budget_s)")
    corpus_size: int = Field(6, ge=1, description="simulated samples in the corpus")
    seed: int = Field(1000, description="first corpus seed; sample i gets the i-th seed from here on that is not "
                      "excluded (the sample under test's)")
    layout_fraction: float = Field(0.34, ge=0, le=1, description="share of the samples that are sky130 "
                                   "standard-cell blocks (only with gdstk installed; synthetic ICs otherwise)")
    sample_yx: tuple[int, int] | None = Field(None, description="lateral size (Y, X) of a corpus sample in voxels, "
                                              "even; default: the scan's object grid (depth and voxel size are "
                                              "always the scan's)")
    workers: int | None = Field(None, ge=1, description="parallel processes making samples (default: the CPU cores)")
    epochs: int = Field(20, ge=1, description="training epochs over the corpus (at most; early stopping applies)")
    fine_tune_epochs: int | None = Field(None, ge=1, description="pipeline: epochs of fine-tuning the pre-trained "
                                         "model on the golden standard (at most; default: [train] epochs; "
                                         "train_scratch always gets [train] epochs)")
    val_samples: int = Field(1, ge=0, description="samples held out for validation (none with fewer than 2 samples)")
    budget_s: float = Field(1800.0, gt=0, description="auto: pre-train only if the estimated time of the corpus "
                            "and of the pre-training epochs is within this (s)")
    model: str | None = Field(None, description="pipeline: a pre-trained model file for the run's geometry, "
                              "used instead of building a corpus (checked against the scan's geometry); "
                              "builtin:NAME is a model shipped with rapidtomo (builtin:demo: the demo's geometry)")

    @field_validator("model")
    @classmethod
    def _builtin(cls, v: str | None) -> str | None:
        return str(builtin_model(v[len(BUILTIN):])) if v and v.startswith(BUILTIN) else v


BUILTIN = "builtin:"


def builtin_model(name: str) -> Path:
    """The file of the model ``name`` shipped in ``rapidtomo/models`` (``NAME.pt``, provenance in
    ``NAME.json``); ValueError naming the shipped ones if there is none."""
    from importlib.resources import files
    folder = Path(str(files("rapidtomo") / "models"))
    path = folder / f"{name}.pt"
    if not path.is_file():
        have = sorted(p.stem for p in folder.glob("*.pt"))
        raise ValueError(f"no built-in model {name!r} (built in: {', '.join(have) or 'none'})")
    return path


# measured CPU cost of one corpus sample on one core (docs/pretraining.md, "Costs measured"): a
# 32×64×128 sample at 28 nm, 21 angles, 32-pixel detector, fine model; probe retrieval on 3 angles
# × 20 epochs; approximant 20 iterations × 5 slabs; SART baseline 20 ptychography epochs per angle
SAMPLE_COST = {"voxels": 32 * 64 * 128, "lateral": 64 * 128, "angles": 21, "simulate_s": 9.7,
               "probe_s": 6.7, "probe_work": 3 * 20, "approximant_s": 25.5, "slab_iterations": 5 * 20,
               "two_step_s": 26.4, "epochs": 20}
# training throughput of the small network on one CPU thread (docs/benchmarks.md: 5.2-6.4 patches/s
# of 32×16×16 approximant voxels), in approximant voxels per second
TRAIN_VOXELS_PER_S = 5.2 * 32 * 16 * 16


def estimate_sample_seconds(volume_shape: tuple[int, int, int], n_angles: int, approximant_settings,
                            probe_retrieval=None, fine: dict[str, Any] | None = None) -> float:
    """Rough seconds for one corpus sample on one core, scaled from :data:`SAMPLE_COST`: the
    simulation by voxels × angles, the approximant by lateral voxels × angles × slabs ×
    iterations, the probe retrieval (``probe_retrieval``, a
    :class:`~rapidtomo.recon.TwoStepSettings` with ``refine_probe``) by lateral voxels × its
    angles × epochs, and each full-resolution input of ``fine`` by lateral voxels × angles ×
    ptychography epochs."""
    Z, Y, X = volume_shape
    c = SAMPLE_COST
    lateral, angles = Y * X / c["lateral"], n_angles / c["angles"]
    total = c["simulate_s"] * (Z * Y * X / c["voxels"]) * angles
    work = approximant_settings.n_slabs * approximant_settings.iterations / c["slab_iterations"]
    total += c["approximant_s"] * lateral * angles * work
    if probe_retrieval is not None and probe_retrieval.refine_probe:
        total += c["probe_s"] * lateral * probe_retrieval.probe_angles * probe_retrieval.probe_epochs / c["probe_work"]
    for settings in (fine or {}).values():
        total += c["two_step_s"] * lateral * angles * settings.epochs / c["epochs"]
    return total


def estimate_pretrain_seconds(volume_shape: tuple[int, int, int], n_angles: int, approximant_settings,
                              settings: PretrainSettings, patch: int, probe_retrieval=None,
                              fine: dict[str, Any] | None = None) -> float:
    """Rough wall time of pre-training on an idle CPU machine: the corpus (``corpus_size``
    samples of :func:`estimate_sample_seconds` over ``workers`` processes, default the CPU
    cores) plus ``epochs`` over the training samples' ``patch`` × ``patch`` patches at
    :data:`TRAIN_VOXELS_PER_S`."""
    from .train import patch_starts
    Z, Y, X = volume_shape
    ny, nx = settings.sample_yx or (Y, X)
    workers = min(settings.workers or os.cpu_count() or 1, settings.corpus_size)
    rounds = -(-settings.corpus_size // workers)
    corpus = rounds * estimate_sample_seconds((Z, ny, nx), n_angles, approximant_settings, probe_retrieval, fine)
    n_train = settings.corpus_size - (min(settings.val_samples, settings.corpus_size - 1)
                                      if settings.corpus_size >= 2 else 0)
    patches = len(patch_starts(ny // 2, patch)) * len(patch_starts(nx // 2, patch))
    return corpus + settings.epochs * n_train * patches * Z * patch * patch / TRAIN_VOXELS_PER_S


# ------------------------------------------------------------------------- the geometry

@dataclass
class CorpusGeometry:
    """The acquisition that every corpus sample is simulated in (picklable, sent to the workers).

    ``simulate``: :class:`~rapidtomo.simulate.SimulateSettings` (energy, detector, distance, modes,
    scan step, photons, model); ``angles_deg (N,)``; ``probe (M, n, n)`` complex, the true probe of
    the simulation; ``guess (M, n, n)``, the probe written in the scans (the reconstruction's start);
    ``volume_shape`` ``(Z, Y, X)`` and ``voxel_size_m`` ``(dz, dy, dx)`` of a sample's object grid;
    ``approximant``: :class:`~rapidtomo.recon.ApproximantSettings`; ``source``: where it came from
    (scan file and its sha256, or a preset); ``scan_geometry``: the reduced scan's geometry record;
    ``probe_retrieval``: :class:`~rapidtomo.recon.TwoStepSettings` whose probe retrieval gives the
    approximant its probe (the golden standard's, as in the pipeline); ``fine``: the
    full-resolution inputs of the network (``{"sart": TwoStepSettings}``: the pipeline's
    reduced-angle baselines), made per sample like the approximant.
    """

    simulate: Any
    angles_deg: np.ndarray
    probe: np.ndarray
    guess: np.ndarray
    volume_shape: tuple[int, int, int]
    voxel_size_m: tuple[float, float, float]
    approximant: Any
    source: dict[str, Any]
    scan_geometry: dict[str, Any]
    probe_retrieval: Any
    fine: dict[str, Any]


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_sha256(a: np.ndarray) -> str:
    """sha256 (hex) of an array's float32 values: the content hash of a volume."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def _step_px(scan: ScanData) -> int:
    """The scan step in object pixels: the median distance between consecutive positions."""
    p = scan.positions_m[0]
    if len(p) < 2:
        return 1
    d = np.hypot(*np.diff(p, axis=0).T)
    return max(1, int(round(float(np.median(d)) / scan.voxel_size_m[2])))


def geometry_from_scan(scan: ScanData, approximant_settings, source: dict[str, Any],
                       sample_yx: tuple[int, int] | None = None, probe: np.ndarray | None = None,
                       probe_retrieval=None, fine: dict[str, Any] | None = None) -> CorpusGeometry:
    """The corpus geometry of a reduced scan: its detector, energy, distance, angles, scan step and
    mean photon count (the simulation's for a simulated scan); samples on the scan's object grid,
    or ``sample_yx`` laterally.

    The samples are simulated with ``probe`` ``(M, n, n)`` (the probe the golden standard
    retrieved: what an experiment knows), else with the scan's own ``/entry/probe``; never with a
    simulated scan's true probe. Their scans carry the scan's ``/entry/probe`` as the guess that
    every reconstruction starts from. ``probe_retrieval`` and ``fine``: see :class:`CorpusGeometry`
    (defaults: the default two-step settings, no full-resolution inputs)."""
    from .recon import TwoStepSettings
    from .simulate import SimulateSettings
    Z, Y, X = scan.volume_shape
    ny, nx = sample_yx or (Y, X)
    if ny % 2 or nx % 2:
        raise UserError(f"[pretrain] sample_yx ({ny}, {nx}) must be even (the approximant is 2x coarser)")
    n = int(scan.intensities.shape[-1])
    sim = scan.attrs.get("settings") if scan.attrs.get("simulated") else None
    sim = json.loads(sim) if isinstance(sim, str) else sim
    photons = float(sim["photons"]) if sim else mean_photons(scan.intensities)
    probe = np.asarray(scan.probe if probe is None else probe)
    settings = SimulateSettings(
        shape=(Z, ny, nx), voxel_size_m=scan.voxel_size_m[2], energy_kev=scan.energy_kev,
        detector_pixel_m=scan.detector_pixel_m, detector_size=n, detector_distance_m=scan.detector_distance_m,
        n_modes=int(probe.shape[0]), scan_step_px=_step_px(scan), n_reduced=scan.n_angles,
        theta_max_deg=min(max(float(np.ptp(scan.angles_deg)), 1e-6), 180.0), photons=photons,
        **({k: sim[k] for k in ("model", "slab_tolerance", "scan_pattern", "n_slabs") if k in sim} if sim else {}),
        device="cpu")
    return CorpusGeometry(settings, np.asarray(scan.angles_deg, float), probe,
                          np.asarray(scan.probe), (Z, ny, nx), tuple(scan.voxel_size_m), approximant_settings,
                          source, scan_geometry(scan, approximant_settings), probe_retrieval or TwoStepSettings(),
                          dict(fine or {}))


def read_reduced_scan(path: str | Path) -> tuple[ScanData, dict[str, Any]]:
    """A reduced scan, its patterns left in the file (:func:`~rapidtomo.io.open_scan`), and its
    provenance record (``{"scan": path, "scan_sha256": ...}``)."""
    from .io import open_scan
    scan = open_scan(path)
    return scan, {"scan": str(path), "scan_sha256": file_sha256(path)}


def geometry_from_simulate(sim_settings, approximant_settings, sample_yx: tuple[int, int] | None = None,
                           probe_retrieval=None, fine: dict[str, Any] | None = None) -> CorpusGeometry:
    """The corpus geometry of a planned experiment (``[simulate]`` settings, e.g. a preset's):
    the reduced acquisition that :func:`rapidtomo.simulate.simulate` would make, with the planned
    probe. ``probe_retrieval`` and ``fine``: see :class:`CorpusGeometry`."""
    from .physics.geometry import angle_set_deg
    from .recon import TwoStepSettings
    from .simulate import make_probe, make_probe_guess
    Z, Y, X = sim_settings.shape
    ny, nx = sample_yx or (Y, X)
    if ny % 2 or nx % 2:
        raise UserError(f"[pretrain] sample_yx ({ny}, {nx}) must be even (the approximant is 2x coarser)")
    d = sim_settings.voxel_size_m
    probe = make_probe(sim_settings, d)
    guess = make_probe_guess(sim_settings, d, probe)
    angles = angle_set_deg(sim_settings.n_reduced, sim_settings.theta_max_deg)
    # the geometry record of the scan this plan makes (no intensities yet: photons from the settings)
    plan = ScanData(np.zeros((len(angles), 1, sim_settings.detector_size, sim_settings.detector_size), np.float32),
                    np.zeros((len(angles), 1, 2)), angles, guess, sim_settings.energy_kev, sim_settings.distance_m,
                    sim_settings.detector_pixel_m, (Z, Y, X), (d, d, d))
    record = {**scan_geometry(plan, approximant_settings), "photons": float(sim_settings.photons)}
    sim = sim_settings.model_copy(update={"shape": (Z, ny, nx), "device": "cpu"})
    return CorpusGeometry(sim, angles, probe, guess, (Z, ny, nx), (d, d, d), approximant_settings,
                          {"simulate": sim_settings.to_dict()}, record, probe_retrieval or TwoStepSettings(),
                          dict(fine or {}))


# ------------------------------------------------------------------------- the samples

def corpus_seeds(settings: PretrainSettings, exclude: set[int] | frozenset = frozenset()) -> list[int]:
    """The ``corpus_size`` seeds from ``settings.seed`` on, skipping ``exclude``."""
    out, s = [], settings.seed
    while len(out) < settings.corpus_size:
        if s not in exclude:
            out.append(s)
        s += 1
    return out


def layouts_available() -> bool:
    """Whether sky130 cell blocks can be made here (gdstk installed)."""
    try:
        import gdstk  # noqa: F401
    except ImportError:
        return False
    return True


def sample_plan(settings: PretrainSettings, exclude: set[int] | frozenset = frozenset()) -> list[dict[str, Any]]:
    """One record per sample: ``index``, ``seed``, ``kind`` (``synthetic_ic`` or ``layout_block``)
    and ``params``, the layout statistics drawn from the sample's seed (IC: line fill, via and
    contact densities, gate fill, width fraction, pitch growth, segment length, thickness growth;
    layout block: placement density, routing density, via probability)."""
    seeds = corpus_seeds(settings, exclude)
    n_layout = int(round(settings.layout_fraction * len(seeds))) if layouts_available() else 0
    plan = []
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng([seed, 7])
        if i >= len(seeds) - n_layout:  # the last n_layout samples
            params = {"density": round(float(rng.uniform(0.6, 0.95)), 3),
                      "routing_density": round(float(rng.uniform(0.3, 0.7)), 3),
                      "via_probability": round(float(rng.uniform(0.15, 0.5)), 3)}
            kind = "layout_block"
        else:
            params = {"line_fill": rng.uniform(0.6, 0.95), "via_probability": rng.uniform(0.15, 0.5),
                      "contact_density": rng.uniform(0.3, 0.7), "gate_fill": rng.uniform(0.5, 0.9),
                      "width_fraction": rng.uniform(0.4, 0.6), "pitch_growth": rng.uniform(1.2, 1.5),
                      "segment_length": rng.uniform(4.0, 12.0), "thickness_growth": rng.uniform(0.15, 0.45)}
            params = {k: round(float(v), 3) for k, v in params.items()}
            kind = "synthetic_ic"
        plan.append({"index": i, "seed": int(seed), "kind": kind, "params": params})
    return plan


def sample_phantom(item: dict[str, Any], shape: tuple[int, int, int], voxel_size_m: tuple[float, float, float],
                   energy_kev: float) -> Volume:
    """The truth of one corpus sample ``(Z, Y, X)`` on the scan's voxel grid (phase per voxel, rad,
    with attenuation). A layout block is the sky130 stack's bottom ``Z·dz`` (front end and lowest
    metals over 2 voxels of substrate), rendered at the scan's voxel size."""
    if item["kind"] == "synthetic_ic":
        from .phantom import ICSettings, synthetic_ic
        return synthetic_ic(shape, voxel_size_m, energy_kev, item["seed"], ICSettings(**item["params"]))
    from .phantom.layout import cell_block, load_stack, render_layout
    from .phantom.layout.cells import row_height_um
    Z, Y, X = shape
    dz, dy, dx = voxel_size_m
    stack = load_stack("sky130")
    rows = max(1, int(np.ceil(Y * dy * 1e6 / row_height_um("sky130_fd_sc_hd", stack))))
    lib, _ = cell_block(stack, "sky130_fd_sc_hd", rows=rows, row_width_um=X * dx * 1e6, seed=item["seed"],
                        **item["params"])
    sample = render_layout(lib, stack, voxel_size_m, energy_kev, "block", (0.0, 0.0, X * dx * 1e6, Y * dy * 1e6),
                           2 * dz)
    v = sample.volume
    if v.shape[0] < Z:  # a stack thinner than the sample: oxide-free air on top
        pad = ((Z - v.shape[0], 0), (0, 0), (0, 0))
        return Volume(np.pad(v.data, pad), v.voxel_size_m, dict(v.attrs), np.pad(v.attenuation, pad))
    return Volume(v.data[-Z:, :Y, :X], voxel_size_m, dict(v.attrs), v.attenuation[-Z:, :Y, :X])


def sample_path(corpus_dir: str | Path, index: int) -> Path:
    return Path(corpus_dir) / f"sample_{index:04d}.h5"


def _worker_init() -> None:
    import torch
    torch.set_num_threads(1)
    os.environ["RAPIDTOMO_QUIET"] = "1"


def make_sample(geometry: CorpusGeometry, item: dict[str, Any], path: str | Path, key: str) -> dict[str, Any]:
    """Make one sample and write it to ``path`` atomically: its truth, its reduced scan (kept only
    in memory), the probe retrieved from that scan's guess (``geometry.probe_retrieval``, as the
    golden standard retrieves the pipeline's), the approximant made with that probe and the
    full-resolution inputs ``geometry.fine`` (each two-step baseline with the same retrieved
    probe, or its own settings' probe without ``refine_probe``). Returns the sample's manifest
    record (seed, kind, params, truth sha256, wall and CPU seconds per step and the CPU total: the
    worker runs one torch thread, so the CPU seconds measure the work itself)."""
    import torch

    from .recon.approximant import approximant
    from .recon.two_step import retrieve_probe, two_step
    from .simulate import make_scan
    timer = Timer()
    with timer("phantom"):
        truth = sample_phantom(item, geometry.volume_shape, geometry.voxel_size_m, geometry.simulate.energy_kev)
    with timer("simulate"):
        rng = np.random.default_rng([item["seed"], 1])
        scan = make_scan(truth, geometry.angles_deg, geometry.simulate, geometry.probe, rng,
                         f"sample {item['index']}", geometry.guess)
    retrieved = scan
    if geometry.probe_retrieval.refine_probe:
        with timer("probe"):
            torch.manual_seed(0)
            retrieved = dataclasses.replace(scan, probe=retrieve_probe(scan, geometry.probe_retrieval))
    with timer("approximant"):
        volumes = {"approximant": approximant(retrieved, geometry.approximant)}
    for name, settings in geometry.fine.items():
        with timer(name):
            own = settings.model_copy(update={"refine_probe": False}) if settings.refine_probe else settings
            volumes[name] = two_step(retrieved if settings.refine_probe else scan, own)
    volumes["truth"] = truth
    cpu = {k: round(v, 3) for k, v in timer.cpu_seconds.items()}
    record = {**item, "truth_sha256": array_sha256(truth.data),
              "seconds": {k: round(v, 3) for k, v in timer.seconds.items()}, "cpu_step_seconds": cpu,
              "cpu_seconds": round(sum(cpu.values()), 3)}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"format": CORPUS_FORMAT, "corpus_key": key, "record": json.dumps(record),
                        "geometry": json.dumps(scan_geometry(scan, geometry.approximant))})
        for name, v in volumes.items():
            d = f.create_dataset(name, data=np.asarray(v.data, np.float32), compression="gzip")
            d.attrs["voxel_size_m"] = np.asarray(v.voxel_size_m)
    return record


def read_sample(path: str | Path) -> tuple[dict[str, Volume], Volume, dict[str, Any]]:
    """(inputs, truth, record) of a corpus sample file: ``inputs`` maps ``approximant`` (which
    carries ``geometry``) and any full-resolution inputs (``sart``, ``fbp``) to their volumes."""
    try:
        with h5py.File(path, "r") as f:
            geom = f.attrs["geometry"]
            vols = {n: Volume(f[n][()], tuple(f[n].attrs["voxel_size_m"])) for n in f}
            record = json.loads(f.attrs["record"])
        truth = vols.pop("truth")
        vols["approximant"].attrs["geometry"] = geom
    except (OSError, KeyError) as e:
        raise UserError(f"{path}: not a readable corpus sample ({type(e).__name__}); delete it to remake it") from None
    return vols, truth, record


def _sample_done(path: Path, key: str, item: dict[str, Any]) -> bool:
    """Whether ``path`` holds the planned sample ``item`` (seed, kind, parameters) of this corpus key."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("corpus_key") != key or "approximant" not in f or "truth" not in f:
                return False
            record = json.loads(f.attrs["record"])
    except (OSError, KeyError, json.JSONDecodeError):
        return False
    return all(record.get(k) == item[k] for k in ("seed", "kind", "params"))


def corpus_key(geometry: CorpusGeometry) -> str:
    """Hash of how samples are made (simulation, angles, probe, grid, approximant, probe retrieval
    and full-resolution input settings); which samples (seeds, kinds, statistics) is checked per
    sample file."""
    h = hashlib.sha256()
    h.update(json.dumps({"simulate": geometry.simulate.to_dict(), "approximant": geometry.approximant.to_dict(),
                         "shape": geometry.volume_shape, "voxel": geometry.voxel_size_m,
                         "probe_retrieval": geometry.probe_retrieval.to_dict(),
                         "fine": {n: v.to_dict() for n, v in geometry.fine.items()}}, sort_keys=True).encode())
    for a in (geometry.angles_deg, geometry.probe, geometry.guess):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def build_corpus(corpus_dir: str | Path, geometry: CorpusGeometry, settings: PretrainSettings,
                 exclude_seeds: set[int] | frozenset = frozenset(), exclude: dict[str, Any] | None = None,
                 replace_stale: bool = False) -> dict[str, Any]:
    """Make (or complete) the corpus in ``corpus_dir``; returns the manifest (also written there).

    Samples already on disk with this corpus's key and the planned seed, kind and statistics are
    kept (a killed run resumes; a larger ``corpus_size`` adds samples); the others are (re)made
    by ``settings.workers`` processes. ``exclude_seeds`` are never used as corpus seeds;
    ``exclude`` (e.g. the sample under test's seed or the scan's sha256) is recorded.
    A manifest of other settings in ``corpus_dir`` is refused (one line: use another folder), or
    with ``replace_stale`` (the pipeline's own folder) its samples are deleted and remade.
    """
    corpus_dir = Path(corpus_dir)
    plan = sample_plan(settings, exclude_seeds)
    key = corpus_key(geometry)
    manifest_path = corpus_dir / MANIFEST
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("key") != key and replace_stale:
            log.warning(f"{corpus_dir}: corpus made for other settings; deleting its {len(old.get('samples', []))} "
                        f"samples")
            for path in corpus_dir.glob("sample_*.h5"):
                path.unlink()
            manifest_path.unlink()
        elif old.get("key") != key:
            raise UserError(f"{manifest_path}: the corpus there was made for other settings or another geometry; "
                            f"use another corpus folder (or delete this one)")
    manifest = {"format": CORPUS_FORMAT, "key": key, "geometry": geometry.scan_geometry, "source": geometry.source,
                "simulate": geometry.simulate.to_dict(), "approximant": geometry.approximant.to_dict(),
                "probe_retrieval": geometry.probe_retrieval.to_dict(),
                "fine": {n: v.to_dict() for n, v in geometry.fine.items()}, "pretrain": settings.to_dict(), "sample_shape": list(geometry.volume_shape),
                "excluded_seeds": sorted(int(s) for s in exclude_seeds), "exclude": exclude or {},
                "samples": []}
    corpus_dir.mkdir(parents=True, exist_ok=True)
    records: dict[int, dict] = {}
    todo = []
    for item in plan:
        path = sample_path(corpus_dir, item["index"])
        if _sample_done(path, key, item):
            records[item["index"]] = read_sample(path)[2]
        else:
            todo.append(item)
    if records:
        log.warning(f"{corpus_dir}: {len(records)} of {len(plan)} samples already made, {len(todo)} to go")
    workers = min(settings.workers or os.cpu_count() or 1, max(1, len(todo)))
    t0 = time.perf_counter()
    if todo:
        with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
            futures = [pool.submit(make_sample, geometry, item, sample_path(corpus_dir, item["index"]), key)
                       for item in todo]
            for fut in progress(as_completed(futures), desc="corpus", total=len(futures), unit="sample"):
                r = fut.result()
                records[r["index"]] = r
    manifest["samples"] = [records[i["index"]] for i in plan]
    manifest["workers"] = workers
    manifest["seconds_this_run"] = round(time.perf_counter() - t0, 3)
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def check_disjoint(manifest: dict[str, Any], volume: np.ndarray, name: str) -> None:
    """Refuse (UserError) a corpus that holds ``volume`` (its float32 content's sha256)."""
    h = array_sha256(volume)
    for s in manifest["samples"]:
        if s["truth_sha256"] == h:
            raise UserError(f"{name}: the pre-training corpus holds this very sample (corpus seed {s['seed']})")


# ------------------------------------------------------------------------- training

def corpus_pairs(samples: list[tuple[dict[str, Volume], Volume]], patch: int, overlap: float, val_samples: int,
                 inputs: list[str] | tuple[str, ...] = ("approximant",)):
    """Patches of many samples as one :class:`~rapidtomo.train.PatchPairs`.

    Each sample is (inputs, truth ``(Z, 2y, 2x)``): ``inputs`` maps ``approximant`` ``(Z', y, x)``
    and any full-resolution inputs (``sart``, ``fbp``: ``(Z'', 2y, 2x)``) to volumes; the network's
    ``inputs`` are taken, each resampled along z to the truth's slices. The samples are stacked
    along y (approximant rows ``[k·y, (k+1)·y)`` are sample k; every sample must have the same
    shape) and no patch crosses a sample; the last ``val_samples`` samples (none with fewer than 2)
    give the validation patches.

    Each input is normalised by its own sample's mean and std (as ``predict`` normalises an input
    by default), the truths by the training samples' joint mean and std.
    """
    import torch

    from .nn.unet import COARSE_INPUTS
    from .train import PatchPairs, patch_starts, resample_z
    from .train.data import check_fine, check_pair, stack_inputs
    missing = sorted({i for v, _ in samples for i in inputs if i not in v})
    if missing:
        raise UserError(f"corpus: samples hold no {', '.join(missing)} input; remake the corpus for inputs "
                        f"{list(inputs)}")
    shapes = {(tuple(v[i].shape for i in ("approximant", *inputs)), t.shape) for v, t in samples}
    if len(shapes) != 1:
        raise UserError(f"corpus: samples differ in shape ({sorted(shapes)})")
    v0, t0 = samples[0]
    check_pair(v0["approximant"].shape, t0.shape, ("corpus approximant", "corpus truth"))
    for name in inputs:
        if name not in COARSE_INPUTS:
            check_fine(v0[name].shape, t0.shape, f"corpus {name}", "corpus truth")
    n_val = val_samples if len(samples) >= 2 else 0
    n_val = min(n_val, len(samples) - 1)
    zt = t0.shape[0]
    per_input: dict[str, list] = {i: [] for i in inputs}
    stats: dict[str, list] = {i: [] for i in inputs}
    for v, _ in samples:
        for name in inputs:
            x = resample_z(v[name].data, zt)
            m, sd = float(x.double().mean()), float(x.double().std())
            if not sd > 0:
                raise UserError(f"corpus: a sample's {name} is constant")
            stats[name].append((m, sd))
            per_input[name].append((x - m) / sd)
    g = torch.as_tensor(np.concatenate([np.asarray(t.data, np.float32) for _, t in samples], axis=1))
    ya, xa = v0["approximant"].shape[1:]
    if ya < patch or xa < patch:
        raise UserError(f"corpus: samples of {ya}×{xa} approximant voxels are smaller than one {patch}×{patch} patch")
    n_train = len(samples) - n_val
    g_train = g[:, : 2 * ya * n_train]
    g_mean, g_std = float(g_train.double().mean()), float(g_train.double().std())
    if not g_std > 0:
        raise UserError("corpus: the training truths are constant")
    ys, xs = patch_starts(ya, patch, overlap), patch_starts(xa, patch, overlap)
    corners = [(k * ya + y, x) for k in range(len(samples)) for y in ys for x in xs]
    cut = n_train * len(ys) * len(xs)
    # the model file's input statistics (used by predict's normalise = "model"): the samples' means
    norm = {"target_mean": g_mean, "target_std": g_std}
    for name in inputs:
        norm[f"{name}_mean"] = float(np.mean([m for m, _ in stats[name]]))
        norm[f"{name}_std"] = float(np.mean([sd for _, sd in stats[name]]))
    joined = {name: torch.cat(parts, dim=1) for name, parts in per_input.items()}
    coarse = stack_inputs([joined[i] for i in inputs if i in COARSE_INPUTS], (zt, ya * len(samples), xa))
    fine = stack_inputs([joined[i] for i in inputs if i not in COARSE_INPUTS], (zt, *g.shape[1:]))
    data = PatchPairs(coarse, fine, (g - g_mean) / g_std, np.array(corners[:cut], np.int64),
                      np.array(corners[cut:], np.int64).reshape(-1, 2), patch, xa, xa, norm)
    return data, [f"corpus: {n_train} training and {n_val} validation samples, {cut} training patches, "
                  f"inputs {list(inputs)}"]


def check_corpus_inputs(manifest: dict[str, Any], train_settings, where: str) -> None:
    """Refuse (one-line :class:`UserError`) a corpus without the full-resolution inputs that the
    network takes (``[train] inputs``): the corpus is made for one set of inputs."""
    have = set(manifest.get("fine", {}))
    lacking = [i for i in train_settings.inputs if i != "approximant" and i not in have]
    if lacking:
        raise UserError(f"{where}: the corpus holds no {', '.join(lacking)} for [train] inputs = "
                        f"{list(train_settings.inputs)}; make it with those inputs (another corpus folder)")


#: [train] settings that pre-training does not read: [pretrain] epochs replace the epochs, the corpus's
#: whole samples its split (val_samples), and it starts from fresh weights
TRAIN_SETTINGS_UNUSED = ("epochs", "init", "train_fraction", "val_fraction")


def pretrain(corpus_dir: str | Path, out: str | Path, train_settings, settings: PretrainSettings,
             manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the network on the corpus in ``corpus_dir`` and write the model file ``out``.

    ``train_settings`` (:class:`~rapidtomo.train.TrainSettings`) give the network, patch, schedule
    and device; ``settings.epochs`` replaces their epochs. The model's ``training`` record holds the
    corpus's geometry (what the model is valid for), its key, seeds and sample hashes. Returns
    :func:`rapidtomo.train.train`'s result.
    """
    from .train import train
    corpus_dir = Path(corpus_dir)
    manifest = manifest or json.loads((corpus_dir / MANIFEST).read_text())
    check_corpus_inputs(manifest, train_settings, str(corpus_dir / MANIFEST))
    loaded = [read_sample(sample_path(corpus_dir, s["index"])) for s in manifest["samples"]]
    ts = train_settings.model_copy(update={"epochs": settings.epochs, "init": None})
    pairs = corpus_pairs([(v, t) for v, t, _ in loaded], ts.patch_size(), ts.overlap, settings.val_samples,
                         ts.inputs)
    geometry = dict(manifest["geometry"])
    v0, t0, _ = loaded[0]
    a0 = v0["approximant"]
    a0.attrs["geometry"] = json.dumps(geometry)
    names = (f"{corpus_dir} ({len(loaded)} samples, key {manifest['key']})", str(corpus_dir))
    result = train(a0, t0, ts, out, names=names, pairs=pairs)
    _add_provenance(out, manifest)
    return result


def _add_provenance(model_path: str | Path, manifest: dict[str, Any]) -> None:
    """Add the corpus record (key, source, seeds, sample kinds and hashes) to a model file's
    ``training`` JSON, rewriting it atomically."""
    import torch
    obj = torch.load(model_path, map_location="cpu", weights_only=True)
    training = json.loads(obj["training"])
    training["pretrain"] = {"corpus_key": manifest["key"], "source": manifest["source"],
                            "exclude": manifest["exclude"], "excluded_seeds": manifest["excluded_seeds"],
                            "samples": [{k: s[k] for k in ("seed", "kind", "params", "truth_sha256")}
                                        for s in manifest["samples"]]}
    obj["training"] = json.dumps(training, default=str)
    with atomic_path(model_path) as tmp:
        torch.save(obj, tmp)


def run_pretrain(corpus_dir: str | Path, out: str | Path, geometry: CorpusGeometry, settings: PretrainSettings,
                 train_settings, exclude_seeds: set[int] | frozenset = frozenset(),
                 exclude: dict[str, Any] | None = None, truth: str | Path | None = None,
                 replace_stale: bool = False, command: str | None = None) -> dict[str, Any]:
    """Build (or complete) the corpus, pre-train on it, write ``out`` and its sidecar ``OUT.json``
    (settings, timings, per-sample seconds, training history). ``rapidtomo pretrain`` and the
    pipeline's pretrain stage call this; ``truth`` (the sample under test's volume file, if known)
    must not be in the corpus (:func:`check_disjoint`); ``replace_stale`` as in :func:`build_corpus`;
    ``command``, the command line that made it, goes into the sidecar.
    Returns a summary: samples, seconds per sample (mean of the samples made), timings, epochs,
    best validation NPCC."""
    from .io import read_volume
    timer = Timer()
    with timer("corpus"):
        manifest = build_corpus(corpus_dir, geometry, settings, exclude_seeds, exclude, replace_stale)
    if truth is not None:
        check_disjoint(manifest, read_volume(truth).data, str(truth))
    with timer("train"):
        result = pretrain(corpus_dir, out, train_settings, settings, manifest)
    per_sample = [sum(s["seconds"].values()) for s in manifest["samples"]]
    cpu = [s["cpu_seconds"] for s in manifest["samples"]]
    summary = {"samples": len(manifest["samples"]), "corpus_key": manifest["key"],
               "seconds_per_sample": round(float(np.mean(per_sample)), 3),
               "cpu_seconds_per_sample": round(float(np.mean(cpu)), 3), "workers": manifest["workers"],
               "epochs": len(result["history"]), "best_epoch": result["best_epoch"],
               "best_val_npcc": min((h["val_loss"] for h in result["history"]), default=float("nan")),
               "timings": timer.seconds}
    write_run_info(Path(out).with_suffix(".json"), "pretrain",
                   {"pretrain": settings.to_dict(), "train": train_settings.to_dict()}, timer.seconds,
                   {**summary, "command": command, "geometry": manifest["geometry"], "corpus": str(corpus_dir),
                    "sample_seconds": [s["seconds"] for s in manifest["samples"]], "history": result["history"],
                    "notes": result["notes"]})
    return summary


def pipeline_pretrain(reduced_scan: str | Path, out: str | Path, corpus_dir: str | Path, settings: PretrainSettings,
                      approximant_settings, train_settings, test_seed: int | None = None,
                      truth: str | Path | None = None, probe_path: str | Path | None = None,
                      probe_retrieval=None, fine: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pipeline's pretrain stage: ``out`` is ``settings.model`` (copied, after checking that it
    was made for the reduced scan's geometry and takes the network's inputs) or a model
    pre-trained on a corpus in ``corpus_dir`` made in that scan's geometry with the probe in
    ``probe_path`` (the golden standard's retrieved probe; else the scan's own), whose seeds skip
    ``test_seed`` (the simulated sample under test's) and whose samples differ from ``truth``; a
    corpus there made for other settings is remade. ``probe_retrieval`` and ``fine``: see
    :class:`CorpusGeometry`. Returns the stage's summary."""
    from .validity import check_geometry
    scan, source = read_reduced_scan(reduced_scan)
    if settings.model:
        from .nn import load_model
        m = load_model(settings.model)
        check_geometry(settings.model, m.training.get("geometry"), str(reduced_scan),
                       scan_geometry(scan, approximant_settings))
        if list(m.settings.inputs) != list(train_settings.inputs):
            raise UserError(f"{settings.model}: a network of inputs {list(m.settings.inputs)}, but [train] inputs = "
                            f"{list(train_settings.inputs)}")
        with atomic_path(out) as tmp:
            tmp.write_bytes(Path(settings.model).read_bytes())
        return {"model": settings.model}
    probe = None
    if probe_path is not None:
        from .io import read_probe_file
        probe, _ = read_probe_file(probe_path, scan)
        source["probe"] = str(probe_path)
    geometry = geometry_from_scan(scan, approximant_settings, source, settings.sample_yx, probe, probe_retrieval,
                                  fine)
    exclude = {"scan_sha256": source["scan_sha256"]}
    if test_seed is not None:
        exclude["simulate_seed"] = test_seed
    seeds = {test_seed} if test_seed is not None else set()
    return run_pretrain(corpus_dir, out, geometry, settings, train_settings, seeds, exclude, truth, replace_stale=True)

"""One function per stage: read its inputs, run it, write its outputs with provenance and a JSON
sidecar of settings and timings beside them. ``rapidtomo <stage>`` is a thin wrapper over the
function here, and ``rapidtomo pipeline`` calls the same functions with run-directory paths.

Each function raises :class:`~rapidtomo.errors.UserError` (one line naming the file and the
field) for bad input, writes every file atomically, and returns a summary dict for printing.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from . import estimate, rundir
from .distributed import env_rank, env_world
from .errors import UserError
from .io import open_scan, read_probe_file, read_volume, write_volume
from .runinfo import Timer, provenance, write_run_info
from .validity import check_geometry, geometry_from_attrs, scan_geometry

log = logging.getLogger("rapidtomo.stages")


def info_path(out: str | Path) -> Path:
    """The settings-and-timings sidecar of an output: ``golden.h5`` → ``golden.json``."""
    return Path(out).with_suffix(".json")


def run_simulate(settings, out_dir: str | Path, phantom_path: str | Path | None = None,
                 dry_run: bool = False, cluster=None) -> dict[str, Any]:
    """Simulate ``phantom.h5``, ``scan_nominal.h5`` and ``scan_reduced.h5`` (and ``simulate.json``) in
    ``out_dir``, from :class:`~rapidtomo.simulate.SimulateSettings`; the phantom is the volume file
    ``phantom_path`` if given, else a synthetic IC. Every file carries the settings as provenance.
    With an active ``cluster`` (:class:`rapidtomo.cluster.Cluster`) the angles are dask tasks.

    Every stage function first prints its memory and time estimate (:mod:`rapidtomo.estimate`)
    and stops with a :class:`UserError` if it would not fit; ``dry_run`` returns
    ``{"estimate": ...}`` then, before reading or writing anything else."""
    from .simulate import simulate
    est = estimate.preflight(estimate.estimate_simulate(estimate.with_phantom_shape(settings, phantom_path)))
    if dry_run:
        return {"estimate": est}
    out_dir = Path(out_dir)
    timer = Timer()
    phantom = read_volume(phantom_path) if phantom_path else None
    sources = [str(phantom_path)] if phantom_path else []
    try:
        with timer("simulate"):  # the scans are written angle by angle as they are made
            phantom, nominal, reduced = simulate(settings, phantom, (out_dir / rundir.SCAN_NOMINAL,
                                                 out_dir / rundir.SCAN_REDUCED),
                                                 provenance(settings.to_dict(), sources), cluster)
    except ValueError as e:
        raise UserError(f"{phantom_path or 'settings'}: {e}") from None
    with timer("write"):
        phantom.attrs.update(provenance(settings.to_dict(), sources))
        write_volume(out_dir / rundir.PHANTOM, phantom)
    n_patterns = {kind: int(s.intensities.shape[0] * s.intensities.shape[1])
                  for kind, s in (("nominal", nominal), ("reduced", reduced))}
    write_run_info(out_dir / rundir.SIMULATE_INFO, "simulate", settings.to_dict(), timer.seconds,
                   {"n_patterns": n_patterns, "sources": sources,
                    "cluster": cluster.record() if cluster is not None else None})
    return {"phantom_shape": phantom.shape, "nominal_shape": nominal.intensities.shape,
            "reduced_shape": reduced.intensities.shape, "n_patterns": n_patterns, "timings": timer.seconds}


def run_layout_block(settings, out: str | Path, seed: int, force: bool = False) -> dict[str, Any]:
    """A sky130 standard-cell block (:func:`rapidtomo.phantom.layout.layout_block_phantom`) of the
    simulation's ``shape`` (Z, Y, X), ``voxel_size_m`` (dy = dx, m) and ``energy_kev``, written to the
    volume file ``out``; dz is the process stack's height over Z. An ``out`` made from the same
    values is kept (unless ``force``), so that a pipeline simulating it is not rerun.

    Raises
    ------
    UserError
        gdstk (the ``layouts`` extra) is not installed.
    """
    from .io import open_volume
    out = Path(out)
    request = {"shape": list(settings.shape), "voxel_size_m": settings.voxel_size_m,
               "energy_kev": settings.energy_kev, "seed": seed}
    if out.exists() and not force:
        with open_volume(out) as v:
            made = v.attrs.get("block_request")
        if isinstance(made, str) and json.loads(made) == request:
            return {"shape": tuple(settings.shape), "written": False}
    try:
        from .phantom.layout import layout_block_phantom
    except ModuleNotFoundError as e:
        if e.name == "gdstk":
            raise UserError("a standard-cell block sample needs gdstk: pip install 'rapidtomo[layouts]'") from None
        raise
    timer = Timer()
    with timer("render"):
        vol = layout_block_phantom(tuple(settings.shape), settings.voxel_size_m, settings.energy_kev, seed=seed)
    vol.attrs["block_request"] = request
    vol.attrs.update(provenance(request, []))
    with timer("write"):
        write_volume(out, vol)
    write_run_info(info_path(out), "layout_block", request, timer.seconds,
                   {"shape": list(vol.shape), "voxel_size_m": list(vol.voxel_size_m)})
    return {"shape": vol.shape, "voxel_size_m": vol.voxel_size_m, "written": True, "timings": timer.seconds}


def run_two_step(scan_path: str | Path, out: str | Path, settings, stage: str = "golden",
                 cache_path: str | Path | None = None, probe_path: str | Path | None = None,
                 dry_run: bool = False, cluster=None) -> dict[str, Any]:
    """Two-step reconstruction (per-angle ptychography, then FBP or SART) of the scan file
    ``scan_path`` into the volume file ``out``, from :class:`~rapidtomo.recon.TwoStepSettings`.

    ``stage`` (``golden`` or ``baseline``) names the sidecar's stage; per-angle projections are
    cached in ``cache_path`` (default ``OUT.cache.h5``) so a crashed run resumes. ``probe_path``,
    if given, receives the probe used at every angle (retrieved from the scan's guess unless
    ``refine_probe`` is off; HDF5 ``/probe``, docs/formats.md), for ``rapidtomo approximant --probe``.
    With ``align``, the shifts found go to the volume's attrs and the sidecar (``alignment``, for
    ``rapidtomo approximant --shifts``) and the returned ``alignment`` line is logged. With an
    active ``cluster`` (:class:`rapidtomo.cluster.Cluster`) the angles are dask tasks; the
    sidecar's ``cluster`` says where they ran.
    ``dry_run``: return the memory and time estimate without reading or writing anything."""
    from .device import pick_device
    from .recon.two_step import alignment_summary, n_workers, two_step
    workers = n_workers(settings, pick_device(settings.device))
    est = estimate.preflight(estimate.estimate_two_step(estimate.ScanShape.from_file(scan_path), settings, stage,
                                                        workers))
    if dry_run:
        return {"estimate": est}
    out = Path(out)
    timer = Timer()
    with timer("read"):
        scan = open_scan(scan_path)  # patterns read one angle at a time
    notes = [n for n in [depth_of_field_note(scan, settings.n_slices)] if n]
    if scan.sample_shift_m is not None and not settings.align:
        notes.append("the scan records a simulated drift or axis offset (/entry/simulation/sample_shift_m) but "
                     "align is off: the projections are reconstructed as they are")
    for n in notes:
        log.warning(f"{scan_path}: {n}")
    try:
        with timer("two_step"):
            vol = two_step(scan, settings, cache_path=cache_path or out.with_suffix(".cache.h5"),
                           probe_path=probe_path, cluster=cluster)
    except ValueError as e:
        raise UserError(f"{scan_path}: {e}") from None
    vol.attrs.update(provenance(settings.to_dict(), [scan_path]))
    with timer("write"):
        write_volume(out, vol)
    timer.seconds.update(ptychography=vol.attrs["seconds_ptychography"], alignment=vol.attrs["seconds_alignment"],
                         tomography=vol.attrs["seconds_tomography"])
    alignment = vol.attrs.get("alignment")
    line = None if alignment is None else alignment_summary(alignment)
    if line:
        log.info(f"{scan_path}: {line}")
    write_run_info(info_path(out), stage, settings.to_dict(), timer.seconds,
                   {"sources": [str(scan_path)], "notes": notes, "alignment": alignment,
                    "probe_out": str(probe_path) if probe_path is not None else None,
                    "cluster": cluster.record() if cluster is not None else None})
    return {"shape": vol.shape, "n_angles": scan.n_angles, "timings": timer.seconds, "notes": notes,
            "alignment": line}


def depth_of_field_note(scan, n_slices: int) -> str | None:
    """A warning when the per-angle ptychography's slices are thicker than the depth of field
    2·dx²/λ (docs/reconstruction.md). The slices are the operator's: at each of the scan's angles
    θ the sample's extent along the beam split into ``n_slices``
    (:meth:`~rapidtomo.physics.geometry.BeamGrid.slab_thickness_m`, m); the thickest one counts."""
    import numpy as np

    from .physics.geometry import beam_grid
    h, w = scan.intensities.shape[-2:]
    grid = beam_grid(scan.volume_shape, scan.voxel_size_m, (h, w), n_slices)
    extent_m = max(grid.extent_m(float(t)) for t in np.deg2rad(np.atleast_1d(scan.angles_deg)))
    slice_m = extent_m / n_slices
    dof_m = 2 * scan.voxel_size_m[2] ** 2 / scan.wavelength_m
    if slice_m <= dof_m:
        return None
    return (f"n_slices = {n_slices} gives slices up to {slice_m * 1e6:.3g} µm thick (the sample's "
            f"{extent_m * 1e6:.3g} µm along the beam), thicker than the depth of field {dof_m * 1e6:.3g} µm "
            f"(2·dx²/λ); use n_slices >= {math.ceil(extent_m / dof_m)}")


def read_shifts_file(path: str | Path, scan) -> Any:
    """The sample shifts ``(n_angles, 2)`` (y, x', m) an alignment of ``scan`` found, from ``path``.

    ``path`` is a two-step volume made with ``align`` (attribute ``alignment``) or its JSON sidecar
    (key ``alignment``; docs/formats.md); its angles must be the scan's (1e-6°).

    Raises
    ------
    UserError
        The file is missing or unreadable, holds no alignment, or was aligned on other angles.
    """
    import numpy as np

    from .io import open_volume
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: shifts file not found")
    try:
        if path.suffix == ".json":
            record = json.loads(path.read_text()).get("alignment")
        else:
            with open_volume(path) as v:
                record = v.attrs.get("alignment")
        if isinstance(record, str):
            record = json.loads(record)
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: not a readable volume or JSON sidecar ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: no alignment record (make it with rapidtomo baseline/golden --align)")
    try:
        angles = np.asarray(record["angles_deg"], dtype=np.float64)
        shifts = np.asarray(record["shift_m"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: alignment record lacks angles_deg or shift_m ({e})") from None
    if angles.shape != scan.angles_deg.shape or not np.allclose(angles, scan.angles_deg, rtol=0, atol=1e-6):
        raise UserError(f"{path}: alignment angles_deg ({len(angles)} angles) are not the scan's "
                        f"({scan.n_angles} angles): align the same scan")
    if shifts.shape != (len(angles), 2) or not np.all(np.isfinite(shifts)):
        raise UserError(f"{path}: alignment shift_m must be finite (n_angles, 2) = {(len(angles), 2)}, "
                        f"has shape {shifts.shape}")
    return shifts


def run_approximant(scan_path: str | Path, out: str | Path, settings,
                    probe_path: str | Path | None = None, dry_run: bool = False,
                    shifts_path: str | Path | None = None) -> dict[str, Any]:
    """The approximant of the scan file ``scan_path`` into the volume file ``out``, from
    :class:`~rapidtomo.recon.ApproximantSettings`; the sidecar holds the loss history.

    The probe is the one in ``probe_path`` (:func:`read_probe_file`: the golden standard's
    retrieved probe, as in the paper, or a scan file's), else the scan's own ``/entry/probe``.
    The volume's attribute ``probe_source`` (and the sidecar's) names it as ``FILE:DATASET``.
    ``shifts_path``: the alignment of the same scan by the two-step baseline
    (:func:`read_shifts_file`); the probe positions relative to the sample then follow the
    sample's shifts (attribute and sidecar ``shifts_source``).
    Under torchrun the processes split the angles and rank 0 alone writes; ``dry_run`` returns
    the memory and time estimate without reading or writing anything."""
    from .recon.approximant import approximant
    est = estimate.preflight(estimate.estimate_approximant(estimate.ScanShape.from_file(scan_path), settings,
                                                           env_world()))
    if dry_run:
        return {"estimate": est}
    timer = Timer()
    with timer("read"):
        scan = open_scan(scan_path)  # patterns read one angle at a time
        if probe_path is not None:
            scan.probe, dataset = read_probe_file(probe_path, scan)
            probe_source = f"{probe_path}:{dataset}"
        else:
            probe_source = f"{scan_path}:/entry/probe"
        shifts = None if shifts_path is None else read_shifts_file(shifts_path, scan)
    try:
        with timer("approximant"):
            vol = approximant(scan, settings, shifts)
    except ValueError as e:
        raise UserError(f"{scan_path}: {e}") from None
    hist = vol.attrs["loss_history"]
    sources = [str(p) for p in (scan_path, probe_path, shifts_path) if p is not None]
    shifts_source = None if shifts_path is None else str(shifts_path)
    if env_rank() == 0:  # under torchrun every process has the volume; one writes it
        vol.attrs.update(provenance(settings.to_dict(), sources))
        vol.attrs["geometry"] = json.dumps(scan_geometry(scan, settings))
        vol.attrs["probe_source"] = probe_source
        if shifts_source:
            vol.attrs["shifts_source"] = shifts_source
        with timer("write"):
            write_volume(out, vol)
        write_run_info(info_path(out), "approximant", settings.to_dict(), timer.seconds,
                       {"loss_history": hist, "shape": list(vol.shape), "voxel_size_m": list(vol.voxel_size_m),
                        "world_size": vol.attrs["world_size"], "sources": sources, "probe_source": probe_source,
                        "shifts_source": shifts_source})
    return {"shape": vol.shape, "loss_history": hist, "timings": timer.seconds, "probe_source": probe_source}


def run_train(approximant_path: str | Path, target_path: str | Path, out: str | Path, settings,
              resume: bool = False, dry_run: bool = False, baselines: dict[str, str | Path] | None = None
              ) -> dict[str, Any]:
    """Train the network on the volume files ``approximant_path`` → ``target_path`` and write the
    model file ``out`` (checkpoint, log and loss curve beside it, by :func:`rapidtomo.train.train`),
    from :class:`~rapidtomo.train.TrainSettings`; ``baselines`` are the files of the
    full-resolution inputs that ``settings.inputs`` name (``{"sart": path}``; one that the inputs
    do not name is refused, one they name and that is missing too, by :func:`~rapidtomo.train.prepare_pairs`). Under torchrun only rank 0
    writes the sidecar. Returns :func:`~rapidtomo.train.train`'s result with the read time added
    to its timings."""
    from .io import open_volume
    from .train import train
    baselines = {n: Path(p) for n, p in (baselines or {}).items()}
    extra = [n for n in baselines if n not in settings.inputs]
    if extra:
        raise UserError(f"{baselines[extra[0]]}: --{extra[0]} given, but [train] inputs = {settings.inputs} do not "
                        f"include {extra[0]}")
    with open_volume(approximant_path) as a, open_volume(target_path) as g:
        shapes = (a.shape, g.shape)
    est = estimate.preflight(estimate.estimate_train(*shapes, settings, env_world()))
    if dry_run:
        return {"estimate": est}
    timer = Timer()
    with timer("read"):
        approx, target = read_volume(approximant_path), read_volume(target_path)
        fine = {n: read_volume(p) for n, p in baselines.items()}
    sources = [str(approximant_path), str(target_path)]
    with timer("train_total"):
        result = train(approx, target, settings, out, resume=resume, names=tuple(sources), baselines=fine,
                       baseline_names={n: str(p) for n, p in baselines.items()})
    result["timings"] = {**timer.seconds, **result["timings"]}
    if int(os.environ.get("RANK", "0")) == 0:
        write_run_info(info_path(out), "train", settings.to_dict(), result["timings"],
                       {"network": settings.network_settings().to_dict(), "history": result["history"],
                        "samples_per_s": result["samples_per_s"], "n_train": result["n_train"],
                        "n_val": result["n_val"], "steps": result["steps"], "world_size": result["world_size"],
                        "normalisation": result["normalisation"], "notes": result["notes"],
                        "sources": sources + [str(p) for p in baselines.values()]})
    return result


def run_predict(model_path: str | Path, approximant_path: str | Path | None, out: str | Path, settings,
                dry_run: bool = False, baselines: dict[str, str | Path] | None = None,
                cluster=None) -> dict[str, Any]:
    """Apply a trained model to its input files and write the prediction and its sidecar.

    Parameters
    ----------
    model_path : path
        Model file from ``rapidtomo train``.
    approximant_path : path or None
        Approximant volume file (HDF5 or ``.zarr``), ``(Z, Y, X)``; None for a model that does
        not take it (its geometry is then not checked).
    out : path
        Output volume file (HDF5 or ``.zarr``), ``(Z', 2Y, 2X)``, written column by column
        (:func:`rapidtomo.infer.predict_file`, neither volume need fit in memory) to a temporary
        file or folder renamed when complete; ``OUT.json`` gets the settings and timings.
    settings : rapidtomo.infer.PredictSettings
    baselines : dict of str to path, optional
        The full-resolution input files the model takes (``sart``, ``fbp``), ``(Zb, 2Y, 2X)``.
    dry_run : bool
        Print the estimate (:mod:`rapidtomo.estimate`) and return ``{"estimate": ...}`` without
        writing anything.
    cluster : rapidtomo.cluster.Cluster, optional
        Where the blocks of columns run when active (:func:`rapidtomo.infer.predict_file`).

    Returns
    -------
    dict
        ``input_shape``, ``output_shape``, ``seconds``, ``output_voxels_per_s`` and ``timings``.

    Raises
    ------
    UserError
        A file is missing, malformed or holds NaN, the model is corrupt or foreign, the inputs
        are not the model's, or an input is constant; an existing ``out`` is left as it was.
    """
    from .infer import predict_file
    from .io import open_volume
    from .nn import check_inputs, load_model
    baselines = dict(baselines or {})
    m = load_model(model_path)
    check_inputs(m, (["approximant"] if approximant_path is not None else []) + list(baselines), str(model_path))
    if approximant_path is not None:
        check_model_fits(model_path, approximant_path)
        with open_volume(approximant_path) as a:
            shape = a.shape
    else:
        with open_volume(baselines[m.settings.inputs[0]]) as b:
            shape = (b.shape[0], b.shape[1] // 2, b.shape[2] // 2)
    out_z = settings.z_slices or int(m.training.get("target_z") or shape[0])
    est = estimate.preflight(estimate.estimate_predict(m.network, settings.window or m.patch, shape, out_z, settings))
    if dry_run:
        return {"estimate": est}
    timer = Timer()
    with timer("predict"):
        summary = predict_file(model_path, approximant_path, out, settings, baselines, cluster)
    sources = [str(model_path)] + ([str(approximant_path)] if approximant_path is not None else [])
    write_run_info(info_path(out), "predict", settings.to_dict(), timer.seconds,
                   {**summary, "inputs": list(m.settings.inputs), "sources": sources + [str(p) for p in baselines.values()]})
    return {**summary, "timings": timer.seconds}


def check_model_fits(model_path: str | Path, approximant_path: str | Path) -> None:
    """Refuse (one-line :class:`UserError` naming what differs) a model made for another geometry
    than the approximant file's (:mod:`rapidtomo.validity`); warn when either has no record."""
    from .io import open_volume
    from .nn import load_model
    model = load_model(model_path)
    with open_volume(approximant_path) as v:
        data = geometry_from_attrs(v.attrs)
    check_geometry(str(model_path), model.training.get("geometry"), str(approximant_path), data)


def run_evaluate(volumes: dict[str, Path], references: dict[str, Path], out: str | Path,
                 region=None) -> dict[str, Any]:
    """Metrics of every volume file in ``volumes`` against every reference file, written to ``out``.

    Parameters
    ----------
    volumes, references : dict of str to path
        Volume files by name (``rapid``, ``sart``, ...; ``golden``, ``truth``). A volume may be on
        any grid with the physical extent of the reference (within 2 %); it is resampled onto it.
    out : path
        The metrics file (JSON): a ``vs_<reference>`` block per reference, ``{name: {pcc, ms_ssim,
        ber, dice}}``, ``background_ber`` (per reference, the BER of an all-background volume:
        :func:`~rapidtomo.metrics.evaluate.background_ber`), and the region, file names,
        ``timings_s`` and, for an x-only fractional region, ``region_x_fraction``.
    region : rapidtomo.metrics.evaluate.Region, optional
        Part of each reference grid that is scored (e.g. the held-out x range); whole if None.

    Returns
    -------
    dict
        ``{"vs_<reference>": {name: {metric: value}}, "background_ber": {"vs_<reference>": value}}``,
        as written to ``out``.

    Raises
    ------
    UserError
        A file is missing or malformed, a volume's extent differs from a reference's, or the
        region is empty on a reference's grid.
    """
    from .io.atomic import atomic_path
    from .metrics.evaluate import background_ber, evaluate, reference_values
    from .metrics.segmentation import fit_two_gaussians
    timer = Timer()
    with timer("read"):
        loaded = {name: read_volume(path) for name, path in volumes.items()}
    result, background = {}, {}
    for ref_name, ref_path in references.items():
        with timer("read"):
            ref = read_volume(ref_path)
        for name, v in loaded.items():
            if any(abs(a - b) > 0.02 * b for a, b in zip(v.extent_m, ref.extent_m)):
                raise UserError(f"{volumes[name]}: /volume extent {tuple(f'{e:.4g}' for e in v.extent_m)} m differs "
                                f"from the reference {ref_path}'s {tuple(f'{e:.4g}' for e in ref.extent_m)} m")
        if region is not None:
            try:
                region.slices(ref.shape)
            except ValueError as e:
                raise UserError(f"region on {ref_path} (shape {ref.shape}): {e}") from None
        with timer("evaluate"):
            fit = fit_two_gaussians(reference_values(ref, region))  # once, for BER/DICE and the background
            result[f"vs_{ref_name}"] = evaluate(ref, loaded, region, fit)
            background[f"vs_{ref_name}"] = round(background_ber(ref, region, fit), 5)
    result["background_ber"] = background
    info = {"region": region.text() if region else None, "region_x_fraction": _x_fraction(region),
            "references": {f"vs_{n}": str(p) for n, p in references.items()},
            "volumes": {n: str(p) for n, p in volumes.items()},
            "timings_s": {k: round(v, 4) for k, v in timer.seconds.items()}}
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({**result, **info}, indent=2))
    return result


def _x_fraction(region) -> list[float] | None:
    """The x range as fractions when the region is only that (the report marks it), else None."""
    if region is None or set(region.ranges) != {"x"} or not isinstance(region.ranges["x"][0], float):
        return None
    return list(region.ranges["x"])

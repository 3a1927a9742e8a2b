"""``rapidtomo import``: other tools' files → a rapidtomo scan or volume file, with a report.

``cxi`` gives a scan file; ``ptychoshelves``, ``ptychodus`` and ``dxchange`` give per-angle phase
projections, reconstructed by tomography (SART or FBP) into a volume (e.g. a golden standard
made elsewhere); ``tiff`` gives a volume as it is. What was read (fields, shapes, units,
ranges, conversions) is printed and written with the settings and timings to ``OUT.json``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import Volume, write_scan, write_volume
from ..io.importers import (FORMATS, PHASE_SIGNS, ImportReport, read_cxi, read_dxchange, read_ptychodus,
                            read_ptychoshelves, read_tiff, stack_objects)
from ..io.importers.cxi import DEFAULT_ANGLE_DATASET
from ..io.importers.report import angle_from_csv, read_angles_csv
from ..runinfo import Timer, provenance, write_run_info

HELP = "convert CXI scans, PtychoShelves/ptychodus/DXchange projections or a TIFF stack into rapidtomo files"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=FORMATS, help="cxi: diffraction patterns → scan file; ptychoshelves, "
                   "ptychodus, dxchange: phase projections → volume by tomography; tiff: volume as is")
    p.add_argument("files", type=Path, nargs="+", help="input files (CXI, PtychoShelves and ptychodus: one per angle)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .h5 (scan for cxi, else volume); "
                   "the report goes to the same name with .json")
    p.add_argument("--volume-shape", type=int, nargs=3, metavar=("Z", "Y", "X"),
                   help="grid to reconstruct (all formats but tiff); dy = dx = the object pixel of the files")
    p.add_argument("--voxel-size", type=float, nargs="+", metavar="M",
                   help="voxel size in metres, one value or DZ DY DX: required for tiff and dxchange; "
                   "elsewhere sets dz (DY, DX must match the files' pixel; default dz = dx)")
    p.add_argument("--angles-csv", type=Path, help="CSV with columns file,angle_deg (rotation angle per input file)")
    p.add_argument("--angle-dataset", default=DEFAULT_ANGLE_DATASET,
                   help="cxi: the angle's dataset (degrees) inside each /entry_N")
    p.add_argument("--probe", type=Path, help="cxi: probe file (a rapidtomo scan's /entry/probe or a CXI "
                   "illumination) when the CXI files have none")
    p.add_argument("--saturation-level", type=float, help="cxi: counts at or above this (photons) are left out "
                   "of every loss (default: the files' detector_1/saturation_value, if any)")
    p.add_argument("--no-center", dest="center", action="store_false",
                   help="cxi: keep the translations as given (already relative to the rotation axis and "
                   "mid-height) instead of centring the scanned range (centring: %(default)s)")
    p.add_argument("--phase-sign", choices=PHASE_SIGNS, default="auto",
                   help="φ = s·(the file's phase): +1, -1, or auto (matter comes out positive)")
    p.add_argument("--method", choices=["sart", "fbp"], default="sart", help="tomography of projections")
    p.add_argument("--sweeps", type=int, default=10, help="SART passes over all angles")


def _voxel(args, pixel_yx: tuple[float, float] | None, source: str) -> tuple[float, float, float]:
    """(dz, dy, dx): the files' pixel with dz = dx, or --voxel-size (which must agree in dy, dx)."""
    vs = args.voxel_size
    if vs is not None:
        if len(vs) not in (1, 3) or not all(np.isfinite(vs)) or min(vs) <= 0:
            raise UserError(f"--voxel-size needs one or three positive lengths in metres, got {vs}")
        vs = tuple(vs) * 3 if len(vs) == 1 else tuple(vs)
        if max(vs) > 1e-3:
            raise UserError(f"--voxel-size {vs} is not in metres (e.g. 28e-9 for 28 nm)")
    if pixel_yx is None:
        if vs is None:
            raise UserError(f"{source}: the file holds no pixel size: give --voxel-size")
        return vs
    if vs is None:
        return (pixel_yx[1], pixel_yx[0], pixel_yx[1])
    if not np.allclose(vs[1:], pixel_yx, rtol=1e-6, atol=0):
        raise UserError(f"{source}: --voxel-size dy, dx {vs[1:]} differ from the files' pixel {pixel_yx} m")
    return vs


def _shape(args) -> tuple[int, int, int]:
    if args.volume_shape is None:
        raise UserError(f"{args.format}: --volume-shape Z Y X is required (the grid to reconstruct)")
    if min(args.volume_shape) < 1:
        raise UserError(f"--volume-shape must be three positive sizes, got {args.volume_shape}")
    return tuple(args.volume_shape)


def import_files(args, report: ImportReport, timer: Timer):
    """Read and convert ``args.files`` per ``args.format``: a ScanData (cxi) or a Volume."""
    shape = None if args.format == "tiff" else _shape(args)
    if args.format == "cxi":
        scan = read_cxi(args.files, shape, angles_csv=args.angles_csv, angle_dataset=args.angle_dataset,
                        probe_file=args.probe, center=args.center, saturation_level=args.saturation_level,
                        report=report)
        scan.voxel_size_m = _voxel(args, scan.voxel_size_m[1:], str(args.files[0]))
        return scan
    if args.format == "tiff":
        if len(args.files) != 1:
            raise UserError("tiff: give one TIFF stack")
        return read_tiff(args.files[0], _voxel(args, None, str(args.files[0])), args.phase_sign, report)
    if args.format == "dxchange":
        if len(args.files) != 1:
            raise UserError("dxchange: give one DXchange file")
        vs = _voxel(args, None, str(args.files[0]))
        proj = read_dxchange(args.files[0], vs[1:], args.phase_sign, report)
    else:
        reader = read_ptychoshelves if args.format == "ptychoshelves" else read_ptychodus
        images = [reader(f, report) for f in args.files]
        if args.angles_csv:
            table = read_angles_csv(args.angles_csv)
            for im, f in zip(images, args.files):
                im.angle_deg = angle_from_csv(table, f, args.angles_csv)
        proj = stack_objects(images, args.phase_sign, report)
        vs = _voxel(args, proj.pixel_m, str(args.files[0]))
    return _tomography(proj, shape, vs, args, report, timer)


def _tomography(proj, shape, voxel_size_m, args, report: ImportReport, timer: Timer) -> Volume:
    from ..recon.tomography import reconstruct
    Z, Y, X = shape
    n, H, W = proj.phase.shape
    if H < Y:
        raise UserError(f"{proj.sources[0]}: projections have {H} rows, fewer than --volume-shape Y = {Y}")
    P = proj.phase[:, (H - Y) // 2:(H - Y) // 2 + Y]
    report.add("projections (central rows)", P, "rad")
    report.note(f"tomography: {args.method.upper()} of {n} projections ({Y}x{W}, rotation axis at the central "
                f"column) onto {Z}x{Y}x{X} voxels of {voxel_size_m} m")
    with timer("tomography"):
        try:
            vol = reconstruct(P, proj.angles_deg, shape, voxel_size_m, method=args.method, sweeps=args.sweeps)
        except ValueError as e:
            raise UserError(f"{proj.sources[0]}: {e}") from None
    return Volume(vol, voxel_size_m, {"quantity": "phase_rad_per_voxel", "imported_from": args.format,
                                      "method": args.method, "sources": proj.sources, "phase_sign": proj.phase_sign,
                                      "angles_deg": proj.angles_deg.tolist()})


def _lengths(v) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"


def run(args) -> int:
    if args.out.suffix != ".h5":
        raise UserError(f"{args.out}: the output must end in .h5")
    if args.sweeps < 1:
        raise UserError(f"--sweeps must be at least 1, got {args.sweeps}")
    settings = {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "files" else v)
                for k, v in vars(args).items() if not k.startswith("_") and k not in ("out", "command")}
    report = ImportReport(args.format)
    timer = Timer()
    with timer("read"):
        result = import_files(args, report, timer)
    result.attrs.update(provenance(settings, [str(f) for f in args.files]))
    with timer("write"):
        if args.format == "cxi":
            write_scan(args.out, result)
            what = (f"scan {result.intensities.shape} (angles, positions, h, w), {result.energy_kev:.4g} keV, "
                    f"grid {result.volume_shape}, voxel {_lengths(result.voxel_size_m)} m")
        else:
            write_volume(args.out, result)
            what = f"volume {result.shape} (z, y, x), voxel {_lengths(result.voxel_size_m)} m"
    info = args.out.with_suffix(".json")
    write_run_info(info, "import", settings, timer.seconds, {"output": str(args.out), "report": report.to_dict()})
    print(report.text())
    print(f"wrote {args.out}: {what}; report {info}")
    return 0

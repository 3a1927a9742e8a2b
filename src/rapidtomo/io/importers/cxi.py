"""CXI ptychography files (one per angle, or several ``/entry_N`` in one file) → a rapidtomo scan.

Read per entry (each ``/entry_N`` is one rotation angle; paths below are relative to it)::

    data_1/data or instrument_1/detector_1/data    (n_pos, h, w) photons, DC at the centre
    instrument_1/detector_1/distance               sample-detector distance (m)
    instrument_1/detector_1/x_pixel_size, y_pixel_size   detector pixel (m), must be equal
    instrument_1/detector_1/mask                   (h, w), optional, nonzero = bad pixel
    instrument_1/detector_1/saturation_value       optional: counts at or above it are unreliable
    instrument_1/source_1/energy (J) or wavelength (m)
    sample_1/geometry_1/translation or data_1/translation   (n_pos, 3) sample (x, y, z) in m
    instrument_1/source_1/illumination or image_1/data      probe (h, w) or (M, h, w), optional
    ptychodus/tomography_angle_deg (or --angle-dataset)     rotation angle (degrees)

Conversions: probe position = −(sample translation); rapidtomo's (y, x) = (−t_y, −t_x) (CXI x
is horizontal, y vertical, z along the beam, ignored); centred on the middle of the scanned
range over all angles (the scan's centre on the rotation axis and mid-height) unless
``center=False``; energy J → keV. Bad pixels (the union of the masks) become the scan's
``detector_mask`` (``/entry/instrument/detector_mask``, True = bad; every loss leaves them out)
and their values are set to 0; negative counts elsewhere (background subtraction) are clipped to
0; ``saturation_value`` (or ``saturation_level=``) becomes the scan's ``saturation_level``. The
probe is taken as stored (on the object grid, pixel λz/(h·p)); without one in the files a probe
file is required.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...physics.geometry import PLANCK_EV_S, SPEED_OF_LIGHT_M_S, object_pixel_size_m
from ..scan import Patterns, ScanData
from .report import ImportReport, angle_from_csv, open_h5, read_angles_csv

ELECTRON_VOLT_J = 1.602176634e-19
DEFAULT_ANGLE_DATASET = "ptychodus/tomography_angle_deg"

_DATA = ("data_1/data", "instrument_1/detector_1/data")
_DET = "instrument_1/detector_1/"
_SRC = "instrument_1/source_1/"
_TRANSLATION = ("sample_1/geometry_1/translation", "data_1/translation")
_PROBE = ("instrument_1/source_1/illumination", "image_1/data")


def _entry_names(f) -> list[str]:
    return sorted((n for n in f if re.fullmatch(r"entry_\d+", n)), key=lambda n: int(n[6:]))


def _entries(f, file) -> list[str]:
    names = _entry_names(f)
    if not names:
        raise UserError(f"{file}: no /entry_1 group (not a CXI file?)")
    return names


def _in_range(value: float, lo: float, hi: float, file, field: str, unit: str, hint: str) -> float:
    if not lo <= value <= hi:
        raise UserError(f"{file}: {field} = {value:g} is not a plausible value in {unit} ({hint})")
    return float(value)


def energy_kev(f, e: str, file, report: ImportReport) -> float:
    """Photon energy in keV from ``source_1/energy`` (J) or ``source_1/wavelength`` (m)."""
    E = report.read(f, file, f"/{e}/{_SRC}energy", unit="J", ndim=0, required=False)
    if E is not None:
        hint = ("CXI stores joules; this looks like keV" if 0.1 <= E <= 1000 else
                "CXI stores joules; this looks like eV" if 100 <= E <= 1e7 else "expected 1.6e-17..1.6e-13 J")
        return _in_range(float(E), 1.6e-17, 1.6e-13, file, f"/{e}/{_SRC}energy", "J", hint) / ELECTRON_VOLT_J / 1e3
    lam = report.read(f, file, f"/{e}/{_SRC}wavelength", unit="m", ndim=0, required=False)
    if lam is None:
        raise UserError(f"{file}: missing dataset /{e}/{_SRC}energy or /{e}/{_SRC}wavelength")
    lam = _in_range(float(lam), 1e-12, 1e-8, file, f"/{e}/{_SRC}wavelength", "m", "expected 1e-12..1e-8 m")
    return PLANCK_EV_S * SPEED_OF_LIGHT_M_S / lam / 1e3


def read_probe_file(path: str | Path, report: ImportReport) -> np.ndarray:
    """Probe modes ``(M, h, w)`` from a rapidtomo scan (``/entry/probe``) or a CXI file."""
    with open_h5(path) as f:
        paths = ("/entry/probe",) + tuple(f"/{e}/{p}" for e in _entry_names(f) for p in _PROBE)
        p = report.read(f, path, *paths, unit="sqrt(photons)", ndim=(2, 3))
    return p[None] if p.ndim == 2 else p


def _entry_probe(f, e: str, file, window: tuple[int, int], report: ImportReport) -> np.ndarray | None:
    """``source_1/illumination``, else ``image_1/data`` if it has the patterns' size (else it is
    taken for the reconstructed object, CXI's other use of image_1), else None."""
    probe = report.read(f, file, f"/{e}/{_PROBE[0]}", unit="sqrt(photons)", ndim=(2, 3), required=False)
    image = f.get(f"/{e}/{_PROBE[1]}")
    if probe is None and image is not None and image.shape[-2:] == tuple(window):
        probe = report.read(f, file, f"/{e}/{_PROBE[1]}", unit="sqrt(photons)", ndim=(2, 3))
    return probe


def _first(f, e: str, paths: tuple[str, ...]) -> str:
    """The first of ``/e/paths`` in ``f`` (or the first name, for the error that follows)."""
    return next((f"/{e}/{p}" for p in paths if f"/{e}/{p}" in f), f"/{e}/{paths[0]}")


@dataclass
class _Entry:
    """One angle as read from one ``/entry_N``: where its patterns are (file, dataset) and their
    shape ``(n_pos, h, w)``, bad pixels, negative counts per pixel, translations, geometry, angle,
    probe, saturation level. The patterns themselves are read again when written (:class:`CxiPatterns`)."""

    file: Path
    data: str
    shape: tuple[int, int, int]
    bad: np.ndarray
    negative: np.ndarray
    translation: np.ndarray
    geometry: dict[str, tuple[float, str]]
    angle_deg: float | None
    probe: np.ndarray | None
    saturation: float | None


def _read_entry(f, e: str, file: Path, angle_dataset: str | None, report: ImportReport) -> _Entry:
    """Read and check one entry; ``angle_dataset`` None when the angles come from a CSV."""
    data = _first(f, e, _DATA)
    I = report.read(f, file, *(f"/{e}/{p}" for p in _DATA), ndim=3, finite=False, record=False)
    mask = report.read(f, file, f"/{e}/{_DET}mask", ndim=2, required=False)
    if mask is not None and mask.shape != I.shape[1:]:
        raise UserError(f"{file}: /{e}/{_DET}mask shape {mask.shape} differs from the patterns' {I.shape[1:]}")
    bad = np.zeros(I.shape[1:], bool) if mask is None else mask != 0
    good = I[:, ~bad]
    if not np.all(np.isfinite(good)):
        raise UserError(f"{file}: {data} contains NaN or infinite values outside the mask")
    report.add(data, np.where(bad, np.nan, I), "photons (range outside the mask)", file)
    tpath = _first(f, e, _TRANSLATION)
    t = report.read(f, file, *(f"/{e}/{p}" for p in _TRANSLATION), unit="m", ndim=2)
    if t.shape != (len(I), 3):
        raise UserError(f"{file}: {tpath} must be (n_pos, 3) = ({len(I)}, 3), has shape {t.shape}")
    if np.abs(t).max(initial=0) > 1:
        raise UserError(f"{file}: {tpath} reaches {np.abs(t).max():g}, not a sample translation in metres (µm or mm?)")
    distance = f"/{e}/{_DET}distance"
    geo = {"energy": (energy_kev(f, e, file, report), "keV"),
           "distance": (_in_range(float(report.read(f, file, distance, unit="m", ndim=0)), 1e-3, 100, file,
                                  distance, "m", "expected 1 mm..100 m"), "m")}
    for ax in ("x", "y"):
        field = f"/{e}/{_DET}{ax}_pixel_size"
        geo[f"{ax}_pixel"] = (_in_range(float(report.read(f, file, field, unit="m", ndim=0)), 1e-7, 1e-2, file,
                                        field, "m", "expected 0.1 µm..1 cm"), "m")
    if abs(geo["x_pixel"][0] - geo["y_pixel"][0]) > 1e-9 * geo["x_pixel"][0]:
        raise UserError(f"{file}: /{e}/{_DET}x_pixel_size and y_pixel_size differ (rapidtomo needs square pixels)")
    angle = None
    if angle_dataset is not None:
        a = report.read(f, file, f"/{e}/{angle_dataset}", unit="deg", ndim=0, required=False)
        if a is None:
            raise UserError(f"{file}: missing dataset /{e}/{angle_dataset} (the rotation angle; or give --angles-csv)")
        angle = float(a)
    sat = report.read(f, file, f"/{e}/{_DET}saturation_value", unit="photons", ndim=0, required=False)
    if sat is not None and not (np.isfinite(sat) and sat > 0):
        raise UserError(f"{file}: /{e}/{_DET}saturation_value must be a positive count, got {sat}")
    return _Entry(file, data, I.shape, bad, (I < 0).sum(0), t, geo, angle,
                  _entry_probe(f, e, file, I.shape[1:], report), None if sat is None else float(sat))


class CxiPatterns(Patterns):
    """The patterns of CXI entries as a scan's ``(n_angles, n_pos, h, w)``, read one angle (entry)
    at a time: bad pixels (``bad (h, w)``, the union of the masks) and negative counts set to 0."""

    def __init__(self, entries: list[_Entry], bad: np.ndarray):
        super().__init__(entries[0].file, shape=(len(entries),) + entries[0].shape)
        self.sources = [(en.file, en.data) for en in entries]
        self.bad = bad

    def _read(self, k: int) -> np.ndarray:
        file, data = self.sources[k]
        with open_h5(file) as f:
            try:
                a = np.asarray(f[data][()], dtype=np.float32)
            except (OSError, KeyError, ValueError) as e:
                raise UserError(f"{file}: {data} unreadable ({type(e).__name__}: {e})") from None
        a[:, self.bad] = 0
        return np.maximum(a, 0, out=a)


def read_cxi(files, volume_shape, *, angles_csv=None, angle_dataset: str = DEFAULT_ANGLE_DATASET,
             probe_file=None, center: bool = True, saturation_level: float | None = None,
             report: ImportReport | None = None) -> ScanData:
    """Read CXI files into a :class:`ScanData` on the grid ``volume_shape (Z, Y, X)``.

    The patterns are checked entry by entry and left in the files: the scan's ``intensities`` is
    a :class:`CxiPatterns` that reads one entry at a time (as ``write_scan`` writes them), so
    memory holds one angle's patterns whatever the scan's size.

    ``saturation_level`` (photons) overrides the files' ``saturation_value``.
    Voxel size: dy = dx = the object pixel λz/(w·p) of the detector geometry, dz = dx.
    Raises :class:`UserError` (file and field) for anything missing, inconsistent or implausible.
    """
    report = report or ImportReport("cxi")
    files = [Path(p) for p in files]
    angle_dataset = re.sub(r"^/?entry_\d+/", "", angle_dataset).lstrip("/")  # relative to each entry
    csv_angles = read_angles_csv(angles_csv) if angles_csv else None
    entries: list[_Entry] = []
    geometry: dict[str, tuple[float, str]] = {}
    for file in files:
        with open_h5(file) as f:
            names = _entries(f, file)
            if csv_angles is not None and len(names) > 1:
                raise UserError(f"{file}: holds {len(names)} entries; --angles-csv maps one angle per file, "
                                f"give the angles in /entry_N/{angle_dataset} instead")
            for e in names:
                en = _read_entry(f, e, file, None if csv_angles is not None else angle_dataset, report)
                if csv_angles is not None:
                    en.angle_deg = angle_from_csv(csv_angles, file, angles_csv)
                if entries and en.shape[1:] != entries[0].shape[1:]:
                    raise UserError(f"{file}: /{e} patterns are {en.shape[1:]}, the first file's "
                                    f"{entries[0].shape[1:]}")
                if entries and en.shape[0] != entries[0].shape[0]:
                    raise UserError(f"{file}: /{e} has {en.shape[0]} patterns, the first file "
                                    f"{entries[0].shape[0]} (rapidtomo needs the same scan at every angle)")
                for k, (v, unit) in en.geometry.items():
                    ref = geometry.setdefault(k, (v, str(file)))
                    if abs(v - ref[0]) > 1e-6 * abs(ref[0]):
                        raise UserError(f"{file}: /{e} {k} {v:g} {unit} differs from {ref[0]:g} {unit} in {ref[1]}")
                entries.append(en)
    probe = next((en.probe for en in entries if en.probe is not None), None)
    if probe_file is not None:
        probe = read_probe_file(probe_file, report)
        report.note(f"probe from {probe_file}")
    elif probe is None:
        raise UserError(f"{files[0]}: missing dataset /entry_1/{_PROBE[0]} or /entry_1/{_PROBE[1]} "
                        "(no probe in the files: give --probe FILE, e.g. your ptychography's probe)")
    probe = probe[None] if probe.ndim == 2 else probe
    h, w = entries[0].shape[1:]
    if probe.shape[1:] != (h, w):
        raise UserError(f"{probe_file or files[0]}: probe shape {probe.shape} does not match the patterns' "
                        f"({h}, {w}); the probe must be on the object grid, one pixel per detector pixel")
    if not np.iscomplexobj(probe):
        report.note("the probe is real: taken as a complex field with zero phase")
    bad = np.logical_or.reduce([en.bad for en in entries])
    intensities = CxiPatterns(entries, bad)  # read one entry at a time when the scan is written
    negative = int(sum(en.negative for en in entries)[~bad].sum())
    if negative:
        report.note(f"{negative} negative counts outside the mask (background subtraction?) clipped to 0")
    levels = {en.saturation for en in entries if en.saturation is not None}
    if saturation_level is None and levels:
        saturation_level = min(levels)
        report.note(f"saturation level {saturation_level:g} photons from {_DET}saturation_value: counts at or "
                    "above it are left out of every loss")
    t = np.stack([en.translation for en in entries])
    positions = np.stack([-t[..., 1], -t[..., 0]], -1)  # probe (y, x) = −(sample t_y, t_x)
    if center:
        mid = (positions.min(axis=(0, 1)) + positions.max(axis=(0, 1))) / 2
        positions = positions - mid
        report.note(f"positions centred: the middle of the scanned range, (y, x) = ({-mid[0]:.6g}, {-mid[1]:.6g}) m "
                    "of sample translation, is put on the rotation axis and mid-height")
    attrs = {"imported_from": "cxi", "sources": [str(s) for s in files]}
    n_bad = int(bad.sum())
    if n_bad:
        report.note(f"{n_bad} bad detector pixels (mask nonzero) set to 0 and kept as /entry/instrument/"
                    "detector_mask: every loss leaves them out")
    report.note("energy converted J → keV; positions: probe (y, x) = −(sample translation y, x), CXI z ignored")
    E, z, p = geometry["energy"][0], geometry["distance"][0], geometry["x_pixel"][0]
    dx = object_pixel_size_m(E, z, p, w)
    report.add("object pixel λz/(w·p)", dx, "m")
    try:
        return ScanData(intensities, positions, np.array([en.angle_deg for en in entries]), probe.astype(np.complex64),
                        E, z, p, tuple(volume_shape), (dx, dx, dx), attrs,
                        detector_mask=bad if n_bad else None, saturation_level=saturation_level)
    except ValueError as err:
        raise UserError(f"{files[0]}: {err}") from None

"""Synthetic integrated circuits: a layer stack with Manhattan wiring, vias, contacts and gates.

Axis 0 (z) is the stacking axis, along the beam at θ = 0. **Index 0 is the top of the stack**
(the widest, thickest metal, first met by the beam at θ = 0) and the last indices are the Si
substrate. From the bottom up: Si substrate; a W contact/transistor level (short dense W gate
lines along y in its lower half, W contact plugs under the first metal's lines); then metal
layers (Cu lines) and via layers (Cu plugs where the lines of the metal layers below and above
cross) alternating, ending with a metal layer: 13 layers by default (substrate, contacts,
M1–M6, V1–V5), as in the paper's 16 nm sample. Lines run along x in M1, M3, M5 and along y in
M2, M4, M6; pitch, width and thickness grow from the bottom to the top; tracks are broken into
segments at random. Everything is embedded in SiO2 and surrounded by an air margin in x and y.
Material ids are :data:`rapidtomo.phantom.materials.LABELS` (air 0, SiO2 1, Si 2, Cu 3, W 4).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from pydantic import Field, field_validator

from ..config import Settings
from ..io import Volume
from .materials import LABELS, phase_and_attenuation_per_voxel

Layer = tuple[int, int, str, int, int, str]  # (z0, z1, kind, pitch, width, direction), voxels


class ICSettings(Settings):
    """Layout statistics of the synthetic IC (lengths in voxels unless stated)."""

    n_layers: int = Field(13, ge=1, description="layers from the bottom: Si substrate, W contacts, then metal and "
                          "via layers alternating, ending with a metal (13: M1–M6 and V1–V5 as in the paper's "
                          "sample); fewer when Z is smaller than this (one voxel per layer at least)")
    substrate_fraction: float = Field(0.1, ge=0, lt=0.5, description="share of Z taken by the Si substrate "
                                      "(at least 1 voxel when there are 3 layers or more)")
    thickness_growth: float = Field(0.3, ge=0, description="thickness of metal k (k = 0 for M1) is proportional "
                                    "to 1 + thickness_growth·k; the contact level weighs as M1")
    via_thickness_ratio: float = Field(0.7, gt=0, description="thickness of a via layer relative to the metal "
                                       "below it")
    margin_fraction: float = Field(0.05, ge=0, lt=0.4, description="air margin on each x side and each y side, "
                                   "as a fraction of X and of Y (the chip is a plate filling the rest)")
    bottom_pitch: int | None = Field(None, ge=4, description="pitch of M1; default min(Y, X)/16 clipped to 4..12, "
                                     "so that M1 lines are 2–6 voxels wide")
    pitch_growth: float = Field(1.35, ge=1, description="pitch ratio between consecutive metal layers; a pitch "
                                "never exceeds a third of the chip's width across the lines")
    width_fraction: float = Field(0.5, gt=0, lt=1, description="line width / pitch (width ≥ 2 voxels, and at "
                                  "least 1 voxel of oxide between neighbouring lines)")
    line_fill: float = Field(0.85, ge=0, le=1, description="fraction of tracks that carry wire")
    segment_length: float = Field(8.0, gt=0, description="mean length of a wire segment, in pitches of its layer")
    gap_length: tuple[float, float] = Field((1.0, 2.5), description="range of the gap between segments on a "
                                            "track, in widths of its layer (at least 2 voxels)")
    via_probability: float = Field(0.3, ge=0, le=1, description="chance of a via at a crossing of lines of the "
                                   "metal layers below and above")
    contact_density: float = Field(0.5, ge=0, le=1, description="chance of a W contact at each contact site "
                                   "(every M1 pitch along an M1 line)")
    gate_fill: float = Field(0.7, ge=0, le=1, description="fraction of gate tracks (along y, M1 pitch) that carry "
                             "W gates; gates are short segments of mean length 3 pitches")

    @field_validator("gap_length")
    @classmethod
    def _ordered_positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"gap_length must be (low, high) with 0 < low <= high, got {v}")
        return v


@dataclass
class _Tracks:
    """Parallel lines of one layer on the chip footprint: ``starts (n,)`` first index across the
    lines, ``pitch``, ``width``, ``runs (n, length)`` where each track carries wire, ``along`` 'x'/'y'."""

    starts: np.ndarray
    pitch: int
    width: int
    runs: np.ndarray
    along: str

    def mask(self, ny: int, nx: int) -> np.ndarray:
        """The ``(ny, nx)`` boolean footprint of the lines."""
        n_across = ny if self.along == "x" else nx
        m = np.zeros((n_across, self.runs.shape[1]), bool)
        rows = (self.starts[:, None] + np.arange(self.width)).ravel()
        m[rows] = np.repeat(self.runs, self.width, axis=0)
        return m if self.along == "x" else m.T

    @property
    def centres(self) -> np.ndarray:
        return self.starts + self.width // 2


def _segments(n: int, length: int, mean_seg: float, min_seg: int, gap: tuple[int, int], rng) -> np.ndarray:
    """Boolean ``(n, length)``: each row alternates segments (min_seg + geometric) and gaps."""
    k = length // (min_seg + gap[0]) + 2
    seg = min_seg + rng.geometric(1.0 / max(1.0, mean_seg - min_seg + 1), (n, k)) - 1
    gaps = rng.integers(gap[0], gap[1] + 1, (n, k))
    ends = np.cumsum(seg + gaps, axis=1) - rng.integers(0, seg[:, :1] + gaps[:, :1])  # random phase
    starts = ends - gaps - seg
    diff = np.zeros((n, length + 1), np.int32)
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))
    np.add.at(diff, (rows, np.clip(starts, 0, length)), 1)
    np.add.at(diff, (rows, np.clip(starts + seg, 0, length)), -1)
    return np.cumsum(diff[:, :length], axis=1) > 0


def _tracks(n_across: int, length: int, pitch: int, width: int, fill: float, mean_seg: float,
            gap: tuple[int, int], along: str, rng) -> _Tracks:
    """Lines ``width`` wide every ``pitch`` (random offset) across, broken into segments along."""
    starts = np.arange(int(rng.integers(0, pitch)), n_across - width + 1, pitch)
    starts = starts[rng.random(len(starts)) < fill]
    runs = _segments(len(starts), length, mean_seg, max(width, 2), gap, rng)
    return _Tracks(starts, pitch, width, runs, along)


def _squares(ny: int, nx: int, y0: np.ndarray, x0: np.ndarray, side: int) -> np.ndarray:
    """``(ny, nx)`` mask of ``side``-wide squares with top-left corners ``(y0, x0)`` (clipped)."""
    m = np.zeros((ny, nx), bool)
    r = np.arange(side)
    yy = np.clip(y0[:, None, None] + r[None, :, None], 0, ny - 1)
    xx = np.clip(x0[:, None, None] + r[None, None, :], 0, nx - 1)
    m[np.broadcast_to(yy, (len(y0), side, side)), np.broadcast_to(xx, (len(x0), side, side))] = True
    return m


def _layer_plan(Z: int, s: ICSettings) -> list[tuple[int, int, str, int]]:
    """Layers bottom → top as ``(z0, z1, kind, metal index)``; kind ∈ substrate, contact, metal, via."""
    n = min(s.n_layers, Z)
    kinds = ["substrate", "contact"] + ["metal" if i % 2 == 0 else "via" for i in range(max(0, n - 2))]
    kinds = kinds[:n] if n >= 3 else ["contact", "metal"][-n:]
    if kinds[-1] == "via":  # the top of the stack is a metal layer
        kinds.pop()
    metal_idx, m = [], -1
    for k in kinds:
        m += k == "metal"
        metal_idx.append(max(m, 0))
    weights = np.array([(1 + s.thickness_growth * mi) * (s.via_thickness_ratio if k == "via" else 1.0)
                        for k, mi in zip(kinds, metal_idx)])
    n_sub = 0
    if kinds[0] == "substrate":
        n_sub = min(max(1, round(Z * s.substrate_fraction)), Z - len(kinds) + 1)
        weights[0] = 0.0
    raw = weights / weights.sum() * (Z - n_sub)
    if n_sub:
        raw[0] = n_sub
    thick = np.maximum(1, np.floor(raw)).astype(int)
    while thick.sum() < Z:  # largest remainders first
        thick[np.argmax(raw - thick)] += 1
    while thick.sum() > Z:
        thick[np.argmax(np.where(thick > 1, thick - raw, -np.inf))] -= 1
    plan, z1 = [], Z  # z index 0 is the top: stack from the bottom (high z) upwards
    for k, mi, t in zip(kinds, metal_idx, thick):
        plan.append((z1 - int(t), z1, k, mi))
        z1 -= int(t)
    return plan


def _validate_shape(shape) -> tuple[int, int, int]:
    if len(tuple(shape)) != 3 or min(int(v) for v in shape) < 1:
        raise ValueError(f"shape must be three positive sizes (Z, Y, X), got {tuple(shape)}")
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def synthetic_ic_labels(shape, seed: int = 0, settings: ICSettings | None = None) -> tuple[np.ndarray, list[Layer]]:
    """Material ids ``(Z, Y, X)`` uint8 (:data:`~rapidtomo.phantom.materials.LABELS`) and the layers.

    Layers are listed bottom → top as ``(z0, z1, kind, pitch, width, direction)``: voxel range
    ``z0:z1``, kind ∈ substrate, contact, metal, via; pitch and width of the lines (metal), of
    the contact sites (contact) or the via side (via, pitch 0); direction 'x'/'y' for metal
    lines, 'plugs' for contacts and vias, '' for the substrate.
    """
    s = settings or ICSettings()
    Z, Y, X = _validate_shape(shape)
    rng = np.random.default_rng(seed)
    my, mx = round(Y * s.margin_fraction), round(X * s.margin_fraction)
    ny, nx = max(1, Y - 2 * my), max(1, X - 2 * mx)  # the chip's footprint
    p0 = s.bottom_pitch or int(np.clip(min(Y, X) // 16, 4, 12))
    chip = np.full((Z, ny, nx), LABELS["SiO2"], np.uint8)
    metals: dict[int, _Tracks] = {}
    layers: list[Layer] = []

    def metal(mi: int) -> _Tracks:
        if mi not in metals:
            along = "x" if mi % 2 == 0 else "y"
            n_across, length = (ny, nx) if along == "x" else (nx, ny)
            pitch = max(p0, min(round(p0 * s.pitch_growth**mi), n_across // 3))
            width = min(max(2, round(pitch * s.width_fraction)), pitch - 1)
            gap = (max(2, round(width * s.gap_length[0])), max(2, round(width * s.gap_length[1])))
            metals[mi] = _tracks(n_across, length, pitch, width, s.line_fill, s.segment_length * pitch, gap,
                                 along, rng)
        return metals[mi]

    for z0, z1, kind, mi in _layer_plan(Z, s):
        if kind == "substrate":
            chip[z0:z1] = LABELS["Si"]
            layers.append((z0, z1, kind, 0, 0, ""))
        elif kind == "contact":
            m1 = metal(0)
            w = m1.width
            # contact sites every p0 along each M1 track (x), centred on the line
            xs = np.arange(int(rng.integers(0, p0)), nx - w + 1, p0)
            if len(m1.starts) and len(xs):
                ti, xi = np.nonzero(m1.runs[:, xs + w // 2] & (rng.random((len(m1.starts), len(xs)))
                                                               < s.contact_density))
                plugs = _squares(ny, nx, m1.starts[ti], xs[xi], w) & m1.mask(ny, nx)
            else:
                plugs = np.zeros((ny, nx), bool)
            chip[z0:z1][:, plugs] = LABELS["W"]
            if z1 - z0 >= 2:  # transistor gates: short dense W lines along y in the lower half
                gates = _tracks(nx, ny, p0, 2, s.gate_fill, 3.0 * p0, (2, max(2, p0)), "y", rng).mask(ny, nx)
                chip[(z0 + z1) // 2:z1][:, gates] = LABELS["W"]
            layers.append((z0, z1, kind, p0, w, "plugs"))
        elif kind == "metal":
            t = metal(mi)
            chip[z0:z1][:, t.mask(ny, nx)] = LABELS["Cu"]
            layers.append((z0, z1, kind, t.pitch, t.width, t.along))
        else:  # via between metal mi (below) and mi + 1 (above), at crossings of their lines
            lo, hi = metal(mi), metal(mi + 1)
            side = min(lo.width, hi.width)
            cross = lo.runs[:, hi.centres] & hi.runs[:, lo.centres].T  # (n_lo, n_hi)
            i, j = np.nonzero(cross & (rng.random(cross.shape) < s.via_probability))
            a = lo.starts[i] + (lo.width - side) // 2  # across lo = along hi
            b = hi.starts[j] + (hi.width - side) // 2
            y0, x0 = (a, b) if lo.along == "x" else (b, a)
            plugs = _squares(ny, nx, y0, x0, side) & lo.mask(ny, nx) & hi.mask(ny, nx)
            chip[z0:z1][:, plugs] = LABELS["Cu"]
            layers.append((z0, z1, kind, 0, side, "plugs"))
    labels = np.full((Z, Y, X), LABELS["air"], np.uint8)
    labels[:, my:my + ny, mx:mx + nx] = chip
    return labels, layers


def labels_to_volume(labels: np.ndarray, voxel_size_m, energy_kev: float, attrs: dict) -> Volume:
    """Phase and attenuation per voxel (float32) from material ids; voxel length dz along the beam."""
    table = phase_and_attenuation_per_voxel(energy_kev, float(voxel_size_m[0]))
    lut = np.zeros((2, max(LABELS.values()) + 1), np.float32)
    for name, i in LABELS.items():
        lut[:, i] = table[name]
    return Volume(lut[0][labels], voxel_size_m, {"quantity": "phase_rad_per_voxel", **attrs},
                  attenuation=lut[1][labels])


def synthetic_ic(shape=(32, 64, 256), voxel_size_m=(28e-9, 28e-9, 28e-9), energy_kev: float = 8.8, seed: int = 0,
                 settings: ICSettings | None = None) -> Volume:
    """A synthetic IC ``(Z, Y, X)``: phase per voxel (float32, rad) with attenuation μ per voxel.

    ``voxel_size_m = (dz, dy, dx)`` in metres; phase 2π·δ·dz/λ per material at ``energy_kev``.
    ``attrs``: quantity, phantom, seed, energy_kev, layers (JSON list, bottom → top, of
    ``(z0, z1, kind, pitch, width, direction)``, see :func:`synthetic_ic_labels`), n_layers
    (made) and n_layers_requested (smaller when Z < settings.n_layers), ic_settings (JSON) and
    materials (JSON ``{name: id}`` of :func:`synthetic_ic_labels`'s labels).
    """
    s = settings or ICSettings()
    labels, layers = synthetic_ic_labels(shape, seed, s)
    attrs = {"phantom": "synthetic_ic", "seed": int(seed), "energy_kev": float(energy_kev),
             "layers": json.dumps([list(layer) for layer in layers]), "n_layers": len(layers),
             "n_layers_requested": s.n_layers, "ic_settings": json.dumps(s.to_dict()),
             "materials": json.dumps(LABELS)}
    return labels_to_volume(labels, voxel_size_m, energy_kev, attrs)


def metal_fraction(labels: np.ndarray) -> float:
    """Share of the chip's (non-air) voxels that are Cu or W."""
    chip = labels != LABELS["air"]
    return float(np.isin(labels[chip], (LABELS["Cu"], LABELS["W"])).mean()) if chip.any() else 0.0



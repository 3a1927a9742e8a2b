"""Synthetic integrated circuits: a layer stack with Manhattan wiring, vias and contacts.

Axis 0 (z) is the stacking axis, along the beam at θ = 0. Index 0 is the top of the stack
(the thickest, widest-pitch metal) and the last indices are the Si substrate; from the bottom
up: substrate, a W contact level, then metal (Cu lines) and via (Cu plugs) layers alternating,
13 layers by default as in the paper's sample. Lines run along x in even metal layers and along
y in odd ones; pitch and width grow from the bottom to the top; tracks are broken into segments
at random; vias sit where lines of the metal layers above and below cross. Everything is
embedded in SiO2; an air margin surrounds the chip in x (and optionally y).
"""
from __future__ import annotations

import json

import numpy as np
from pydantic import Field

from ..config import Settings
from ..io import Volume
from .materials import LABELS, phase_and_attenuation_per_voxel


class ICSettings(Settings):
    """Layout statistics of the synthetic IC (all lengths in voxels)."""

    n_layers: int = Field(13, ge=2, description="layers: substrate, W contacts, then metal and via layers "
                          "alternating up to a top metal (13: M1–M6 and V1–V5, as in the paper's sample)")
    substrate_fraction: float = Field(0.12, ge=0, lt=0.5, description="share of Z taken by the Si substrate")
    margin_fraction: float = Field(0.05, ge=0, lt=0.4, description="air margin on each x side (fraction of X)")
    margin_fraction_y: float = Field(0.0, ge=0, lt=0.4, description="air margin on each y side (fraction of Y)")
    bottom_pitch: int | None = Field(None, ge=4, description="metal pitch of the lowest metal layer; default "
                                     "min(Y, X)/16, at least 4")
    pitch_growth: float = Field(1.35, ge=1, description="pitch ratio between consecutive metal layers")
    line_fill: float = Field(0.8, gt=0, le=1, description="fraction of tracks that carry wire")
    break_rate: float = Field(0.015, ge=0, lt=1, description="chance per voxel of track length to end a segment")
    via_probability: float = Field(0.25, ge=0, le=1, description="chance of a via at a crossing of lines")
    contact_density: float = Field(0.3, ge=0, le=1, description="chance of a W contact at each contact site")


def _layer_plan(Z: int, s: ICSettings) -> list[tuple[int, int, str, int]]:
    """Layers bottom → top as (z0, z1, kind, metal index); kind ∈ substrate, contact, metal, via."""
    n_sub = max(1, int(round(Z * s.substrate_fraction))) if s.substrate_fraction > 0 and Z > 2 else 0
    n_stack = Z - n_sub
    n_layers = min(s.n_layers - (n_sub > 0), n_stack)
    kinds = ["contact"] + ["metal" if i % 2 == 0 else "via" for i in range(n_layers - 1)]
    if len(kinds) > 1 and kinds[-1] == "via":  # the top of the stack is a metal layer
        kinds.pop()
    metal_idx, m = [], -1
    for k in kinds:
        m += k == "metal"
        metal_idx.append(max(m, 0))
    weights = np.array([(1 + 0.25 * mi) * (1.0 if k == "metal" else 0.6) for k, mi in zip(kinds, metal_idx)])
    raw = weights / weights.sum() * n_stack
    thick = np.maximum(1, np.floor(raw)).astype(int)
    while thick.sum() < n_stack:
        thick[np.argmax(raw - thick)] += 1
    while thick.sum() > n_stack:
        thick[np.argmax(np.where(thick > 1, thick - raw, -np.inf))] -= 1
    # z index 0 is the top: place from the bottom (high z) upwards
    plan, z1 = [], Z
    if n_sub:
        plan.append((Z - n_sub, Z, "substrate", -1))
        z1 = Z - n_sub
    for k, mi, t in zip(kinds, metal_idx, thick):
        plan.append((z1 - t, z1, k, mi))
        z1 -= t
    return plan


def _tracks(n_across: int, n_along: int, pitch: int, width: int, s: ICSettings, rng) -> np.ndarray:
    """A 2D mask ``(n_across, n_along)`` of broken lines running along the second axis."""
    mask = np.zeros((n_across, n_along), bool)
    offset = int(rng.integers(0, pitch))
    for start in range(offset, n_across - width + 1, pitch):
        if rng.random() > s.line_fill:
            continue
        run = rng.random(n_along) >= s.break_rate  # breaks: short gaps in the track
        gaps = np.flatnonzero(~run)
        for g in gaps:
            run[g:g + int(rng.integers(1, max(2, pitch)))] = False
        mask[start:start + width] |= run[None, :]
    return mask


def synthetic_ic_labels(shape, settings: ICSettings | None = None, seed: int = 0):
    """Material labels ``(Z, Y, X)`` uint8 (ids in ``materials.LABELS``) and the layer list."""
    s = settings or ICSettings()
    Z, Y, X = (int(v) for v in shape)
    rng = np.random.default_rng(seed)
    lab = np.full((Z, Y, X), LABELS["SiO2"], np.uint8)
    bottom = s.bottom_pitch or max(4, min(Y, X) // 16)
    plan = _layer_plan(Z, s)
    metal_masks: dict[int, np.ndarray] = {}
    layers = []

    def metal_mask(mi: int) -> np.ndarray:
        if mi not in metal_masks:
            pitch = int(round(bottom * s.pitch_growth**mi))
            width = max(2, pitch // 2)
            if mi % 2 == 0:  # lines along x
                metal_masks[mi] = _tracks(Y, X, pitch, width, s, rng)
            else:  # lines along y
                metal_masks[mi] = _tracks(X, Y, pitch, width, s, rng).T
        return metal_masks[mi]

    for z0, z1, kind, mi in plan:
        if kind == "substrate":
            lab[z0:z1] = LABELS["Si"]
            layers.append((z0, z1, kind, 0, 0, ""))
        elif kind == "contact":
            sites = np.zeros((Y, X), bool)
            step = max(3, bottom // 2 + 1)
            ys, xs = np.meshgrid(np.arange(0, Y - 1, step), np.arange(0, X - 1, step), indexing="ij")
            keep = rng.random(ys.shape) < s.contact_density
            for y, x in zip(ys[keep], xs[keep]):
                sites[y:y + 2, x:x + 2] = True
            lab[z0:z1][:, sites] = LABELS["W"]
            layers.append((z0, z1, kind, step, 2, "points"))
        elif kind == "metal":
            m = metal_mask(mi)
            lab[z0:z1][:, m] = LABELS["Cu"]
            pitch = int(round(bottom * s.pitch_growth**mi))
            layers.append((z0, z1, kind, pitch, max(2, pitch // 2), "x" if mi % 2 == 0 else "y"))
        else:  # via between metal mi (below) and mi + 1 (above)
            cross = metal_mask(mi) & metal_mask(mi + 1)
            w = max(2, int(round(bottom * s.pitch_growth**mi)) // 2)
            pick = np.zeros((Y, X), bool)
            cy, cx = np.nonzero(cross[::w, ::w])
            chosen = rng.random(len(cy)) < s.via_probability
            for y, x in zip(cy[chosen] * w, cx[chosen] * w):
                pick[y:y + w, x:x + w] = True
            lab[z0:z1][:, pick & cross] = LABELS["Cu"]
            layers.append((z0, z1, kind, 0, w, "vias"))
    mx, my = int(round(X * s.margin_fraction)), int(round(Y * s.margin_fraction_y))
    if mx:
        lab[:, :, :mx] = LABELS["air"]
        lab[:, :, X - mx:] = LABELS["air"]
    if my:
        lab[:, :my] = LABELS["air"]
        lab[:, Y - my:] = LABELS["air"]
    return lab, layers


def labels_to_volume(labels: np.ndarray, voxel_size_m, energy_kev: float, attrs: dict) -> Volume:
    """Phase and attenuation per voxel from material labels (voxel length dz along the beam)."""
    table = phase_and_attenuation_per_voxel(energy_kev, voxel_size_m[0])
    names = {v: k for k, v in LABELS.items()}
    phase_lut = np.zeros(max(names) + 1, np.float32)
    att_lut = np.zeros(max(names) + 1, np.float32)
    for i, n in names.items():
        phase_lut[i], att_lut[i] = table[n]
    return Volume(phase_lut[labels], voxel_size_m, {"quantity": "phase_rad_per_voxel", **attrs},
                  attenuation=att_lut[labels])


def synthetic_ic(shape=(32, 64, 256), voxel_size_m=(28e-9, 28e-9, 28e-9), energy_kev: float = 8.8, seed: int = 0,
                 settings: ICSettings | None = None) -> Volume:
    """A synthetic IC as a :class:`Volume` of phase per voxel (float32, rad) with attenuation.

    ``attrs`` record the generator, seed, energy and the layer list
    ``(z0, z1, kind, pitch, width, direction)`` (JSON), z0 < z1 voxel indices.
    """
    s = settings or ICSettings()
    labels, layers = synthetic_ic_labels(shape, s, seed)
    attrs = {"phantom": "synthetic_ic", "seed": seed, "energy_kev": energy_kev, "n_layers": len(layers),
             "layers": json.dumps([list(map(lambda v: v if isinstance(v, str) else int(v), l)) for l in layers]),
             "ic_settings": json.dumps(s.to_dict())}
    return labels_to_volume(labels, voxel_size_m, energy_kev, attrs)

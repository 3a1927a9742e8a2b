"""Model files: weights plus everything needed to rebuild and apply the network.

A model file is a ``torch.save`` of a dict of tensors, strings and numbers only, so it loads with
``torch.load(weights_only=True)`` (no pickled code). Layout (docs/formats.md, "Model files"):

``format`` = ``"rapidtomo-model"``, ``format_version`` (3: the network's inputs are recorded;
version 2 files are read as approximant-only networks; version 1 networks pooled in y and x only
and must be retrained), ``architecture`` (``"RapidUNet3D"``), ``inputs`` (list of the input
volumes in channel order, e.g. ``["approximant", "sart"]``; also in ``network``), ``network``
(JSON of :class:`NetworkSettings`), ``normalisation`` (dict of floats: ``{input}_mean``,
``{input}_std`` of each training input; ``output_scale``, ``output_offset`` mapping the network's
output to phase in radians), ``patch`` (approximant window in y and x), ``training`` (JSON:
settings, sources, summary), ``state_dict`` (name → tensor).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import torch

from ..errors import UserError
from ..io.atomic import atomic_path
from .unet import NetworkSettings, RapidUNet3D

FORMAT = "rapidtomo-model"
FORMAT_VERSION = 3
READ_VERSIONS = (2, 3)  # version 2: no inputs recorded, the approximant alone (input_mean, input_std)
# what changed at each version, for the error that refuses an old file
OLD_VERSIONS = {1: "its network pools in y and x only; this rapidtomo's network also pools in z (2×2×2)"}
ARCHITECTURE = "RapidUNet3D"
OUTPUT_KEYS = ("output_scale", "output_offset")


def norm_keys(inputs: list[str]) -> list[str]:
    """The normalisation entries a model with these inputs needs."""
    return [f"{i}_{s}" for i in inputs for s in ("mean", "std")] + list(OUTPUT_KEYS)


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode) with its settings and normalisation."""

    network: RapidUNet3D
    settings: NetworkSettings
    normalisation: dict[str, float]
    patch: int
    training: dict[str, Any] = field(default_factory=dict)


def save_model(path: str | Path, network: RapidUNet3D, normalisation: dict[str, float], patch: int,
               training: dict[str, Any] | None = None) -> Path:
    """Write ``network``'s weights (on CPU) with its settings and normalisation, atomically."""
    keys = norm_keys(network.settings.inputs)
    missing = [k for k in keys if k not in normalisation]
    if missing:
        raise ValueError(f"normalisation lacks {missing}")
    obj = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": ARCHITECTURE,
           "inputs": list(network.settings.inputs), "network": network.settings.model_dump_json(),
           "normalisation": {k: float(normalisation[k]) for k in keys}, "patch": int(patch),
           "training": json.dumps(training or {}, default=str),
           "state_dict": {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_model(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Read a model file (``weights_only=True``); a corrupt file or another architecture is a
    one-line :class:`UserError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for truncated/foreign/pickled-code files
        raise UserError(f"{path}: not a readable rapidtomo model file (corrupt, truncated or not saved by "
                        f"rapidtomo: {type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path}: not a rapidtomo model file (no format={FORMAT!r} entry)")
    if obj.get("format_version") in OLD_VERSIONS:
        raise UserError(f"{path}: model format_version {obj['format_version']} is too old: "
                        f"{OLD_VERSIONS[obj['format_version']]}; retrain it with `rapidtomo train`")
    if obj.get("format_version") not in READ_VERSIONS:
        raise UserError(f"{path}: model format_version {obj.get('format_version')!r} is not supported "
                        f"(this rapidtomo reads {', '.join(map(str, READ_VERSIONS))})")
    if obj.get("architecture") != ARCHITECTURE:
        raise UserError(f"{path}: architecture {obj.get('architecture')!r} is not {ARCHITECTURE!r}")
    for key in ("network", "normalisation", "patch", "state_dict"):
        if key not in obj:
            raise UserError(f"{path}: model file lacks {key!r}")
    try:
        settings = NetworkSettings.model_validate_json(obj["network"])
    except (pydantic.ValidationError, TypeError) as e:
        raise UserError(f"{path}: invalid network settings: {str(e).splitlines()[0]}") from None
    norm = obj["normalisation"]
    if obj["format_version"] == 2 and isinstance(norm, dict) and "input_mean" in norm:
        norm = {**norm, "approximant_mean": norm["input_mean"], "approximant_std": norm["input_std"]}
    if obj["format_version"] > 2 and obj.get("inputs") != settings.inputs:
        raise UserError(f"{path}: inputs {obj.get('inputs')!r} differ from its network's {settings.inputs}")
    keys = norm_keys(settings.inputs)
    if not isinstance(norm, dict) or any(k not in norm for k in keys):
        raise UserError(f"{path}: normalisation must hold {keys}")
    net = RapidUNet3D(settings)
    try:
        net.load_state_dict(obj["state_dict"], strict=True)
    except (RuntimeError, AttributeError, TypeError) as e:
        raise UserError(f"{path}: weights do not match the {settings.variant} network it declares "
                        f"(another architecture?): {str(e).splitlines()[0][:160]}") from None
    try:
        training = json.loads(obj.get("training", "{}"))
    except (json.JSONDecodeError, TypeError):
        training = {}
    net.to(device).eval()
    return LoadedModel(net, settings, {k: float(norm[k]) for k in keys}, int(obj["patch"]), training)


def check_inputs(model: LoadedModel, given: list[str], name: str) -> None:
    """Refuse (one-line :class:`UserError`) inputs other than the model's: ``given`` are the
    volumes at hand (e.g. ``["approximant", "sart"]``), ``name`` the model file in the message."""
    want = model.settings.inputs
    if sorted(given) != sorted(want):
        flags = {"approximant": "APPROXIMANT", "sart": "--sart FILE", "fbp": "--fbp FILE"}
        raise UserError(f"{name}: the model takes {' + '.join(want)} ({' '.join(flags[i] for i in want)}), "
                        f"but was given {' + '.join(given) or 'nothing'}")

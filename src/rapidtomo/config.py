"""Validated settings shared by every stage, and loading them from TOML or YAML files.

Each stage defines its own settings class (a subclass of :class:`Settings`) next to its code;
this module holds the base class and the file loader so that all stages behave alike:
unknown keys are errors, every field has a docstring-like description, and a config file may
hold one table per stage (``[simulate]``, ``[approximant]``, ...) or the stage's keys at top level.
"""
from __future__ import annotations

import json
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from .errors import UserError

S = TypeVar("S", bound="Settings")


class Settings(pydantic.BaseModel):
    """Base of every stage's settings: unknown keys are refused, values are validated."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise UserError(f"{path}: the top level must be a mapping")
            return data
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}: cannot parse: {str(e).splitlines()[0]}") from None
    raise UserError(f"{path}: unknown config format (use .toml, .yaml or .yml)")


def build_settings(cls: type[S], section: str, config_path: str | Path | None = None,
                   overrides: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None) -> S:
    """Settings from ``defaults``, then the config file's ``[section]`` (or top level), then overrides.

    ``defaults`` replace the class's own (a preset, or another default of a shared class);
    ``overrides`` hold command-line values, ``None`` values are ignored (flag not given).
    Validation errors become one-line :class:`UserError`s naming the file and field.
    """
    values = dict(defaults or {})
    if config_path is not None:
        data = load_config_file(config_path)
        if section in data:
            if not isinstance(data[section], dict):
                raise UserError(f"{config_path}: [{section}] must be a table")
            values.update(data[section])
        else:  # a file with this stage's keys at top level (tables belong to other stages)
            values.update({k: v for k, v in data.items() if not isinstance(v, dict)})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return settings_from(cls, section, values, str(config_path) if config_path is not None else "settings")


def settings_from(cls: type[S], section: str, values: dict[str, Any], source: str = "settings") -> S:
    """``cls(**values)``, a validation error becoming one line ``SOURCE: [section] field: message``."""
    try:
        return cls(**values)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        where = " ".join([f"[{section}]"] + [".".join(str(p) for p in err["loc"])] * bool(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}: {where}: {msg}") from None


def preset_names() -> list[str]:
    """Names of the built-in settings files ``rapidtomo/presets/*.toml`` (``demo``, ``paper``, ``thick``)."""
    return sorted(p.name[:-5] for p in files("rapidtomo").joinpath("presets").iterdir() if p.name.endswith(".toml"))


def preset_path(name: str) -> Path:
    """The built-in settings file ``rapidtomo/presets/<name>.toml`` (one of :func:`preset_names`)."""
    path = Path(str(files("rapidtomo") / "presets" / f"{name}.toml"))
    if not path.is_file():
        raise UserError(f"{path}: no built-in preset {name!r}")
    return path


def preset(name: str) -> dict[str, Any]:
    """A built-in preset's sections: ``preset("paper")["simulate"]`` is the paper's geometry."""
    return load_config_file(preset_path(name))

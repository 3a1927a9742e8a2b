"""Command-line flags built from a settings class's fields, so a flag's type, choices, default and
help are the field's and are written once (in the settings class).

A flag that is not given is absent from the parsed arguments (``argparse.SUPPRESS``), so a value
from ``--config`` is never overridden by a default; ``--help`` shows the field's default.
"""
from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Iterable

from ..config import Settings


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only where there is a real default (not None, not a bare switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS) or "(default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _argparse_kind(annotation: Any) -> dict[str, Any]:
    """``type``/``choices``/``nargs``/``action`` for a field annotation."""
    t = _unwrap_optional(annotation)
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        return {"type": type(args[0]), "choices": list(args)}
    if origin is tuple:
        return {"type": _argparse_kind(args[0]).get("type", str), "nargs": len(args)}
    if origin is list:
        return {"type": _argparse_kind(args[0]).get("type", str), "nargs": "+"}
    if t in (int, float, str):
        return {"type": t}
    raise TypeError(f"no command-line form for a field of type {annotation}")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type[Settings], fields: Iterable[str],
                           names: dict[str, str] | None = None, defaults: dict[str, Any] | None = None,
                           metavars: dict[str, Any] | None = None, dest_prefix: str = "") -> None:
    """Add ``--field-name`` flags for ``fields`` of ``cls``: type, choices and help from the field.

    ``names`` renames flags (``{"theta_max_deg": "--theta-max"}``); ``defaults`` are the defaults
    that the command passes to :func:`~rapidtomo.config.build_settings` instead of the class's,
    shown in the help. The parsed value keeps the field's name (``args.theta_max_deg``), after
    ``dest_prefix`` where two settings classes of one command share a field name.
    """
    for name in fields:
        info = cls.model_fields[name]
        default = (defaults or {}).get(name, info.default)
        help_text = info.description or name
        if default is not None:
            help_text += f" (default: {_show(default)})"
        kw = _argparse_kind(info.annotation)
        if metavars and name in metavars:
            kw["metavar"] = metavars[name]
        flag = (names or {}).get(name, "--" + name.replace("_", "-"))
        parser.add_argument(flag, dest=dest_prefix + name, default=argparse.SUPPRESS,
                            help=help_text.replace("%", "%%"), **kw)


def add_dry_run_argument(parser: argparse.ArgumentParser) -> None:
    """``--dry-run``: print the stage's memory and time estimate (rapidtomo.estimate) and exit."""
    parser.add_argument("--dry-run", action="store_true", help="print the memory and time estimate and exit "
                        "(0 if it fits the memory available, 2 if not) without writing anything")


def settings_overrides(args: argparse.Namespace, fields: Iterable[str], dest_prefix: str = "") -> dict[str, Any]:
    """The given flags among ``fields`` as ``{field: value}`` (flags not given are absent)."""
    return {name: getattr(args, dest_prefix + name) for name in fields if hasattr(args, dest_prefix + name)}


CLUSTER_FLAGS = {"scheduler": "--scheduler", "workers": "--cluster-workers", "retries": "--cluster-retries"}


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scheduler ADDRESS``, ``--cluster-workers N``, ``--cluster-retries N`` (section ``[cluster]``,
    :class:`rapidtomo.cluster.ClusterSettings`)."""
    from ..cluster import ClusterSettings
    add_settings_arguments(parser, ClusterSettings, CLUSTER_FLAGS, names=CLUSTER_FLAGS, dest_prefix="cluster_",
                           metavars={"scheduler": "ADDRESS", "workers": "N", "retries": "N"})


def cluster_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The cluster flags given as the pipeline's overrides ``{"cluster": {field: value}}`` (``{}``
    without any)."""
    given = settings_overrides(args, CLUSTER_FLAGS, dest_prefix="cluster_")
    return {"cluster": given} if given else {}


def cluster_settings(args: argparse.Namespace, config_path: Path | None):
    """:class:`~rapidtomo.cluster.ClusterSettings` from the config file's ``[cluster]`` section (if
    it has one: a stage's file may hold its keys at top level) and the cluster flags."""
    from ..cluster import ClusterSettings
    from ..config import build_settings, load_config_file
    has = config_path is not None and "cluster" in load_config_file(config_path)
    return build_settings(ClusterSettings, "cluster", config_path if has else None,
                          settings_overrides(args, CLUSTER_FLAGS, dest_prefix="cluster_"))

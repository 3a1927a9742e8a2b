"""The ``rapidtomo`` command: one subcommand per stage (modules in ``rapidtomo.commands``).

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
``run`` is a thin wrapper over the stage's function in :mod:`rapidtomo.stages` (or the pipeline's).
Flags of a stage's settings are built from its settings class (:mod:`rapidtomo.commands.flags`).
A :class:`~rapidtomo.errors.UserError` becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands.flags import HelpFormatter
from .errors import UserError

# subcommand name → module under rapidtomo.commands
COMMANDS = {
    "simulate": "simulate",
    "phantom": "phantom",
    "import": "import_",
    "approximant": "approximant",
    "golden": "golden",
    "baseline": "baseline",
    "pretrain": "pretrain",
    "train": "train",
    "predict": "predict",
    "evaluate": "evaluate",
    "report": "report",
    "export-tiff": "export_tiff",
    "pipeline": "pipeline",
    "demo": "demo",
    "sweep": "sweep",
    "ablation": "ablation",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rapidtomo",
        description="Reduced-angle X-ray ptycho-tomography with a learned prior (RAPID).")
    parser.add_argument("--version", action="version", version=f"rapidtomo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"rapidtomo.commands.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP,
                           formatter_class=HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"rapidtomo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rapidtomo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

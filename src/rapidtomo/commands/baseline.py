"""``rapidtomo baseline``: FBP or SART (two-step) from the reduced-angle scan, RAPID's comparison."""
from __future__ import annotations

import argparse

from . import golden

HELP = "two-step baseline from the reduced scan: per-angle ptychography, then FBP or SART"
SECTION = "baseline"
DEFAULTS = {"method": "fbp"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    golden.add_arguments(p, section=SECTION, defaults=DEFAULTS)


def run(args) -> int:
    return golden.run(args, section=SECTION, defaults=DEFAULTS)

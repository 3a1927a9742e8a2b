"""``rapidtomo export-tiff``: a volume file as an ImageJ TIFF stack for Fiji/napari."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "export a volume (z, y, x) as a 32-bit ImageJ TIFF stack with its voxel size in µm"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("volume", type=Path, help="volume file (HDF5 /volume, or .zarr)")
    p.add_argument("-o", "--out", type=Path, help="TIFF file (default: the volume's name with .tif)")


def run(args) -> int:
    from ..io.tiff import export_tiff
    print(f"wrote {export_tiff(args.volume, args.out or args.volume.with_suffix('.tif'))}")
    return 0

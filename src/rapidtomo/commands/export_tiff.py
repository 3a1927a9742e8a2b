"""``rapidtomo export-tiff``: a volume file as an ImageJ TIFF stack for Fiji/napari."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import Volume, read_volume
from ..io.atomic import atomic_path

HELP = "export a volume (z, y, x) as a 32-bit ImageJ TIFF stack with its voxel size in µm"


def write_tiff(path, volume: Volume) -> Path:
    """Write ``volume`` as a float32 ImageJ hyperstack (axes ZYX), voxel size in µm, atomically."""
    import tifffile
    path = Path(path)
    dz, dy, dx = (d * 1e6 for d in volume.voxel_size_m)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(volume.data, dtype=np.float32), imagej=True,
                         resolution=(1 / dx, 1 / dy), metadata={"axes": "ZYX", "spacing": dz, "unit": "um"})
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("volume", type=Path, help="volume file (HDF5 /volume, or .zarr)")
    p.add_argument("-o", "--out", type=Path, help="TIFF file (default: the volume's name with .tif)")


def run(args) -> int:
    out = args.out or args.volume.with_suffix(".tif")
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UserError(f"{out}: the output must end in .tif or .tiff")
    write_tiff(out, read_volume(args.volume))
    print(f"wrote {out}")
    return 0

"""Files: scan data (diffraction patterns + geometry) and volumes (HDF5 or zarr), written atomically."""
from .scan import Patterns, ScanData, ScanWriter, open_scan, read_probe_file, read_scan, write_scan
from .volume import Volume, VolumeFile, create_volume, open_volume, read_volume, write_volume

__all__ = ["Patterns", "ScanData", "ScanWriter", "Volume", "VolumeFile", "open_scan", "read_probe_file", "read_scan",
           "write_scan", "open_volume", "create_volume", "read_volume", "write_volume"]

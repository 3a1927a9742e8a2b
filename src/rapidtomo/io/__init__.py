"""Files: scan data (diffraction patterns + geometry) and volumes, HDF5 with atomic writes."""
from .scan import ScanData, read_scan, write_scan
from .volume import Volume, read_volume, write_volume

__all__ = ["ScanData", "Volume", "read_scan", "write_scan", "read_volume", "write_volume"]

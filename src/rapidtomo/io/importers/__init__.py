"""Importers: other tools' files → rapidtomo scan and volume files (``rapidtomo import``).

One module per format; each reads, checks and converts (axes, position sign, phase sign, units)
and records what it read in an :class:`ImportReport`. Problems are one-line
:class:`~rapidtomo.errors.UserError`\\ s naming the file and the field. docs/formats.md lists
the paths each importer reads.

========================  ==========================================  ====================
format                    reads                                       gives
========================  ==========================================  ====================
``cxi``                   CXI ptychography files (patterns)           :class:`ScanData`
``ptychoshelves``         ``*_recons.mat`` / ``Niter*.mat`` objects   :class:`ObjectImage`
``ptychodus``             ptychodus HDF5 products (objects)           :class:`ObjectImage`
``dxchange``              ``/exchange/data``, ``/exchange/theta``     :class:`Projections`
``tiff``                  a TIFF stack (z, y, x)                      :class:`Volume`
========================  ==========================================  ====================
"""
from .cxi import read_cxi
from .dxchange import read_dxchange
from .projections import PHASE_SIGNS, ObjectImage, Projections, stack_objects
from .ptychodus import read_ptychodus
from .ptychoshelves import read_ptychoshelves
from .report import ImportReport
from .tiff import read_tiff

FORMATS = ("cxi", "ptychoshelves", "ptychodus", "dxchange", "tiff")

__all__ = ["FORMATS", "PHASE_SIGNS", "ImportReport", "ObjectImage", "Projections", "read_cxi", "read_dxchange",
           "read_ptychodus", "read_ptychoshelves", "read_tiff", "stack_objects"]

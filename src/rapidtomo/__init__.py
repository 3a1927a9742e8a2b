"""rapidtomo: reduced-angle X-ray ptycho-tomography with a learned prior (the RAPID method)."""

__version__ = "0.1.0"

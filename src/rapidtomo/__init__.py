"""rapidtomo: reduced-angle X-ray ptycho-tomography with a learned prior (the RAPID method)."""
import os

# OpenMP threads that wait for work sleep instead of spinning. With OpenMP's default (spinning),
# 2-thread torch training on a 2-core machine that other jobs share ran 8.5x slower than with
# passive waiting (docs/benchmarks.md, "Threads on a shared machine"). OpenMP reads this when torch
# loads, so it applies when rapidtomo is imported first (the `rapidtomo` command, and the worker
# processes that inherit the environment); a value already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

import os

import pytest
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(1234)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: tiny networks are faster so, and don't stall on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

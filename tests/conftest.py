import os

import pytest
import torch

os.environ.setdefault("RAPIDTOMO_QUIET", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    import numpy as np
    return np.random.default_rng(1234)

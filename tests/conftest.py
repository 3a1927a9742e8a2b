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


TINY_PIPELINE = """
[pipeline]
seed = 1
[simulate]
shape = [8, 32, 64]
n_nominal = 12
theta_max_nominal_deg = 180
n_reduced = 5
photons = 1e5
[golden]
epochs = 3
sweeps = 3
[baseline]
epochs = 3
sweeps = 3
[train]
epochs = 2
patch = 8
"""


@pytest.fixture
def tiny_pipeline_toml():
    """The settings of a tiny whole pipeline (8 x 32 x 64 voxels, 12 + 5 angles) as TOML text, no [pretrain]."""
    return TINY_PIPELINE


@pytest.fixture
def tiny_config(tmp_path, tiny_pipeline_toml):
    """A config file with :func:`tiny_pipeline_toml`'s settings and pre-training off."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(tiny_pipeline_toml + '[pretrain]\nenabled = "off"\n')
    return cfg

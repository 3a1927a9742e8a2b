import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from rapidtomo.io import Volume


def make_pair(seed=0, za=6, ya=16, xa=32, zg=None):
    """A blurred, noisy, 2x coarser 'approximant' of a binary 'golden standard'."""
    rng = np.random.default_rng(seed)
    zg = zg or za
    g = (gaussian_filter(rng.standard_normal((zg, 2 * ya, 2 * xa)), 2) > 0.05).astype(np.float32)
    a = gaussian_filter(g, (1, 2, 2))[:, ::2, ::2]
    if za != zg:
        a = a[np.linspace(0, zg - 1, za).round().astype(int)]
    a = a + 0.1 * rng.standard_normal(a.shape).astype(np.float32)
    return Volume(a, (2e-8, 2e-8, 2e-8)), Volume(g, (2e-8 * za / zg, 1e-8, 1e-8))


@pytest.fixture(name="make_pair")
def make_pair_fixture():
    return make_pair


@pytest.fixture
def tiny():
    """Train settings overrides for a tiny, fast network."""
    return {"widths": [2, 4], "rates": [1, 2], "z_rates": [2, 3], "patch": 8}


@pytest.fixture(autouse=True)
def _on_one_thread(one_thread):
    """Every test here runs on one torch thread (the root conftest's ``one_thread``)."""

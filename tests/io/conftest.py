import h5py
import pytest


def _replace_dataset(path, dataset, value):
    """Delete ``dataset`` from the HDF5 file ``path`` and, unless ``value`` is None, write ``value`` there."""
    with h5py.File(path, "a") as f:
        del f[dataset]
        if value is not None:
            f[dataset] = value


@pytest.fixture
def replace_dataset():
    """A malformed file in one step: ``replace_dataset(path, dataset, value_or_None)``."""
    return _replace_dataset

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster on one thread, and do not stall on a busy shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

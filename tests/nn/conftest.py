import pytest


@pytest.fixture(autouse=True)
def _on_one_thread(one_thread):
    """Every test here runs on one torch thread (the root conftest's ``one_thread``)."""

"""Fixtures shared by the test modules."""

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny torch models: one thread is faster, and immune to a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def rate_cache_of_the_session(tmp_path_factory):
    """Checkpoint rates cached by this run only (frontend.rate_cache), not in the user's ~/.cache."""
    import os

    before = os.environ.get("NEUROSIM_CACHE_DIR")
    os.environ["NEUROSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("neurosim-cache"))
    yield
    if before is None:
        os.environ.pop("NEUROSIM_CACHE_DIR", None)
    else:
        os.environ["NEUROSIM_CACHE_DIR"] = before

"""Tiny training runs are dominated by per-op overhead: one intra-op thread is several times
faster than two on the shared 2-core test machines (no spinning OpenMP threads)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Set-up shared by the compress tests: tiny training runs are dominated by per-op overhead, so
one intra-op thread is several times faster than two on the shared 2-core test machines (no
spinning OpenMP threads); commands that set their own thread count are undone after each test.
Also the one comparison of two runs' resumable states (exact resume tests)."""
import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def assert_same_training_state(dir_a, dir_b):
    """Two run folders hold bit-identical training states (weights, optimiser slots, history);
    returns both states for checks of their own (e.g. the recipe's rank state)."""
    from compress.training.engine import STATE_FILE
    from compress.training.state import load_training_state
    a = load_training_state(os.path.join(dir_a, STATE_FILE))
    b = load_training_state(os.path.join(dir_b, STATE_FILE))
    assert (a["step"], a["epoch"], a["finished"]) == (b["step"], b["epoch"], b["finished"])
    for name, state in a["modules"].items():
        for key, tensor in state.items():
            assert torch.equal(tensor, b["modules"][name][key]), f"{name}.{key} differs"
    for name, state in a["optimizers"].items():
        for index, slots in state["state"].items():
            for slot, value in slots.items():
                assert torch.equal(value, b["optimizers"][name]["state"][index][slot]), f"{name} {slot}"
    assert a["history"] == b["history"]
    return a, b

"""compress.training.state: RNG capture/restore and the weights_only training checkpoint."""
import argparse
import random

import numpy as np
import pytest
import torch

from compress.training.state import (load_training_state, preserved_rng, rng_state, save_training_state,
                                     seed_everything, set_rng_state)


def draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), float(np.random.randn())


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    seed_everything(5)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    path = str(tmp_path / "state.pt")
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    save_training_state(path, {"rng": rng_state(), "optim": optimizer.state_dict(), "step": 3})
    expected = draws()
    seed_everything(99)
    state = load_training_state(path)  # torch.load(weights_only=True) inside
    set_rng_state(state["rng"])
    assert draws() == expected
    fresh = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    fresh.load_state_dict(state["optim"])
    assert fresh.param_groups[0]["betas"] == (0.5, 0.999) and state["step"] == 3


def test_preserved_rng_leaves_streams_untouched():
    seed_everything(1)
    expected = draws()
    seed_everything(1)
    with preserved_rng():
        draws()
        draws()
    assert draws() == expected


def test_unreadable_or_foreign_checkpoints_raise_value_errors(tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="cannot read the training checkpoint"):
        load_training_state(str(truncated))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        load_training_state(str(foreign))

    evil = tmp_path / "evil.pt"  # arbitrary pickled objects are refused, never executed
    torch.save({"format": "gan-compression-train/1", "x": argparse.Namespace(a=1)}, evil)
    with pytest.raises(ValueError, match="cannot read"):
        load_training_state(str(evil))


def test_save_is_atomic_and_replaces(tmp_path):
    path = str(tmp_path / "state.pt")
    save_training_state(path, {"step": 1})
    save_training_state(path, {"step": 2})
    assert load_training_state(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no temp files left behind

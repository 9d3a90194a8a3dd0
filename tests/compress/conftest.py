"""Helpers shared by the compress tests: the one comparison of two runs' resumable states (exact
resume tests). The one-thread fixture lives in tests/conftest.py."""
import os

import torch


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


def train_as_rank(rank: int, world_size: int, port: int, build, cfg, out_dir) -> None:
    """One torchrun-like process of a multi-process test: join the gloo group, train with
    ``build(cfg, ctx)`` (a trainer factory), save the exit code and final weights to
    ``out_dir/rank<N>.pt`` for the test to compare."""
    from compress.training import distributed as D
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = D.setup(cfg.device)
    try:
        trainer = build(cfg, ctx)
        code = trainer.fit()
        weights = {f"{name}.{k}": v.detach().clone() for name, module in trainer.recipe.modules.items()
                   for k, v in module.state_dict().items()}
        torch.save({"code": code, "weights": weights}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        D.teardown(ctx)

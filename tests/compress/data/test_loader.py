"""make_dataloader: seeded order, fresh augmentation per epoch, resumable skipping."""
import pytest
import torch

from compress.data import build_dataset, make_dataloader
from tests.conftest import DATASETS

ROOT = str(DATASETS / "facades" / "256")


def _dataset(**kwargs):
    return build_dataset("labelmap", ROOT, "train", palette="facades", max_items=6, load_size=40,
                         crop_size=32, flip=True, **kwargs)


def _epoch_paths(loader):
    return [path for batch in loader for path in batch["A_path"]]


def test_batches_have_the_contract_shapes():
    loader = make_dataloader(_dataset(), batch_size=4, shuffle=True, drop_last=True)
    batches = list(loader)
    assert len(batches) == len(loader) == 1
    assert batches[0]["A"].shape == (4, 3, 32, 32) and batches[0]["label"].shape == (4, 32, 32)
    assert len(batches[0]["A_path"]) == 4


def test_order_follows_seed_and_epoch():
    first, second = make_dataloader(_dataset(), 2, True, seed=1), make_dataloader(_dataset(), 2, True, seed=1)
    epochs_a = [_epoch_paths(first) for _ in range(3)]
    epochs_b = [_epoch_paths(second) for _ in range(3)]
    assert epochs_a == epochs_b  # same seed: same orders
    assert len({tuple(e) for e in epochs_a}) > 1  # a new order each epoch
    assert sorted(epochs_a[0]) == sorted(epochs_a[1])  # each epoch is a permutation
    assert _epoch_paths(make_dataloader(_dataset(), 2, True, seed=2)) != epochs_a[0]
    assert _epoch_paths(make_dataloader(_dataset(), 2, False)) == sorted(epochs_a[0])


def test_set_epoch_with_skip_resumes_mid_epoch():
    loader = make_dataloader(_dataset(), 2, True, seed=0)
    for _ in range(3):
        full = [batch["B"] for batch in loader]  # epoch 2 is the last one
    loader.sampler.set_epoch(2, skip=2)
    assert len(loader) == 2
    resumed = [batch["B"] for batch in loader]
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(full[1:], resumed))


def test_workers_give_identical_batches():
    serial = [b["B"] for b in make_dataloader(_dataset(), 3, True, num_workers=0, seed=4)]
    parallel = [b["B"] for b in make_dataloader(_dataset(), 3, True, num_workers=2, seed=4)]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel)) and len(serial) == len(parallel) == 2


def test_distributed_needs_a_process_group():
    with pytest.raises(ValueError, match="init_process_group"):
        make_dataloader(_dataset(), 2, True, distributed=True)

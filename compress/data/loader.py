"""``make_dataloader``: a DataLoader whose order *and* augmentation follow (seed, epoch).

The sampler wraps torch's ``DistributedSampler`` (with one replica when not distributed, which
needs no process group) and yields ``(index, epoch)`` keys. The datasets derive each item's
crop/flip/B-draw from (seed, epoch, index), so a run is reproducible whatever ``num_workers``
is, every epoch sees fresh augmentation, and a resumed run can skip straight to the batch it
stopped at (``loader.sampler.set_epoch(epoch, skip=batches_done * batch_size)``).
"""
from typing import Iterator, Tuple

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


class EpochSampler(Sampler):
    """Indices of one epoch (shuffled by seed + epoch), tagged with that epoch.

    Each new iteration advances the epoch by one; ``set_epoch`` sets it explicitly (resume,
    or the usual ``DistributedSampler.set_epoch`` call once per epoch).
    """

    def __init__(self, dataset: Dataset, shuffle: bool, seed: int = 0, distributed: bool = False):
        if distributed:
            if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
                raise ValueError("distributed=True needs torch.distributed.init_process_group() first "
                                 "(launch with torchrun)")
            replicas, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        else:
            replicas, rank = 1, 0
        self.inner = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=shuffle,
                                        seed=seed, drop_last=False)
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next iteration yields epoch ``epoch``, leaving out its first ``skip`` samples."""
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        self.epoch, self._skip = int(epoch), int(skip)

    def __len__(self) -> int:
        return max(0, len(self.inner) - self._skip)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch, skip = self.epoch, self._skip
        self.epoch, self._skip = epoch + 1, 0
        self.inner.set_epoch(epoch)
        for index in list(self.inner)[skip:]:
            yield index, epoch


def make_dataloader(ds: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0, seed: int = 0,
                    distributed: bool = False, drop_last: bool = False,
                    pin_memory: bool = False) -> DataLoader:
    """A DataLoader over a ``compress.data`` dataset (items keyed by (index, epoch)).

    ``distributed``: each process reads its own shard (DistributedSampler); call it after
    ``init_process_group``. ``loader.sampler`` is the EpochSampler (``set_epoch(epoch, skip)``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(ds) == 0:
        raise ValueError("the dataset is empty")
    sampler = EpochSampler(ds, shuffle=shuffle, seed=seed, distributed=distributed)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=drop_last, pin_memory=pin_memory,
                      persistent_workers=False)

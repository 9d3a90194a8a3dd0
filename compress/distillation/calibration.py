"""Batch-norm re-calibration of SPADE (sub-)networks.

A SPADE supernet shares one set of batch-norm running statistics between all its sub-networks,
and during supernet training those statistics average over whatever configs were sampled: they
fit none of them. Upstream therefore re-estimates them for each sub-network before it is
evaluated (``supernets/spade_supernet.py``, ``calibrate``; also in the search). Here:
`calibrate_batchnorm` resets every batch norm's statistics, switches them to a cumulative
average (``momentum=None``: every batch weighs the same, whatever the order) and runs N training
batches through the generator with only the batch norms in training mode (dropout and the rest
stay in eval mode), then leaves the model in eval mode.

`preserved_buffers` undoes such a calibration afterwards, so that evaluating during training
leaves the training state untouched.
"""
import contextlib
from typing import Dict, Iterable, Iterator, Optional

import torch
from torch import nn
from torch.utils.data import Dataset

from compress.distillation.features import run_generator

_BatchNorm = nn.modules.batchnorm._BatchNorm


def batch_norms(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def calibrate_batchnorm(model: nn.Module, batches: Iterable, config=None) -> int:
    """Re-estimate the batch-norm statistics of ``model`` (for sub-network ``config`` of a
    supernet) on ``batches`` (input tensors, or dataset batches with an "A" entry). Returns the
    number of batches used; the model ends in eval mode. Models without batch norm are only put
    in eval mode. Raises ValueError when ``batches`` is empty."""
    norms = batch_norms(model)
    model.eval()
    if not norms:
        return 0
    device = next(model.parameters()).device
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average over the calibration batches
        norm.train()
    count = 0
    try:
        with torch.no_grad():
            for batch in batches:
                x = batch["A"] if isinstance(batch, dict) else batch
                run_generator(model, x.to(device), config)
                count += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    if count == 0:
        raise ValueError("batch-norm calibration got no batches; give it training images")
    return count


def calibration_batches(dataset: Dataset, images: int, batch_size: int) -> Iterator[torch.Tensor]:
    """The inputs of the first ``images`` items of ``dataset`` (epoch 0: a fixed, reproducible
    set) in batches of ``batch_size``."""
    count = min(int(images), len(dataset))
    for start in range(0, count, batch_size):
        yield torch.stack([dataset[i]["A"] for i in range(start, min(start + batch_size, count))])


@contextlib.contextmanager
def preserved_buffers(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Restore every batch-norm buffer of ``model`` on exit (evaluation-time calibrations must
    not leak into the training checkpoint)."""
    saved: Optional[Dict[str, torch.Tensor]] = None
    if enabled:
        saved = {k: v.clone() for k, v in model.state_dict().items()
                 if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    try:
        yield
    finally:
        if saved:
            model.load_state_dict(saved, strict=False)

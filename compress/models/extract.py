"""Extraction of a standalone sub-network from a once-for-all supernet.

The supernets share weights by leading-channel slicing, so a sub-network's tensors are the
leading slices ``W[:a, :b, :c, :d]`` of the supernet tensors under the same keys (upstream's
``export.py`` copies them module by module the same way). The result is a plain `Sub*`
generator that runs without the supernet and produces the supernet's output for that config.
"""
import torch
from torch import nn


def extract_subnet(supernet: nn.Module, config) -> nn.Module:
    """Return the standalone sub-generator of ``supernet`` for ``config`` with sliced weights.

    ``supernet`` must provide ``make_subnet(config)`` (both zoo supernets do). Raises ValueError
    when the config does not fit the supernet or the two networks' keys disagree.
    """
    if not hasattr(supernet, "make_subnet"):
        raise ValueError(f"{type(supernet).__name__} is not a supernet; extract_subnet needs "
                         "super_mobile_resnet_9blocks or super_mobile_spade")
    subnet = supernet.make_subnet(config)
    super_state = supernet.state_dict()
    sliced = {}
    for key, target in subnet.state_dict().items():
        source = super_state.get(key)
        if source is None:
            raise ValueError(f"sub-network key {key!r} has no counterpart in the supernet")
        if source.dim() != target.dim() or any(t > s for t, s in zip(target.shape, source.shape)):
            raise ValueError(f"{key}: sub-network shape {tuple(target.shape)} is not a leading "
                             f"slice of the supernet's {tuple(source.shape)}")
        with torch.no_grad():
            sliced[key] = source[tuple(slice(0, n) for n in target.shape)].clone()
    subnet.load_state_dict(sliced, strict=True)
    subnet.train(supernet.training)
    return subnet

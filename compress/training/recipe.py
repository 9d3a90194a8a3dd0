"""What a training recipe is, and the small pieces every recipe shares.

A recipe (pix2pix, CycleGAN, GauGAN, later distillation and supernet training) owns its
networks, optimisers and losses and knows how to do one training step; the `Trainer` owns
everything around it (data order, LR schedule, checkpoints, resume, signals, logging,
validation, export). A recipe exposes:

- ``modules``: name -> network, unwrapped (these state_dicts go into checkpoints);
- ``optimizers``: name -> optimiser (the trainer schedules and checkpoints them);
- ``train_step(batch) -> {loss name: float}``;
- ``translate(inputs) -> images``: the main generator in inference, for validation;
- ``generators``: name -> generator to export (the first one is the main one);
- ``visuals``: the last step's images for TensorBoard; ``rank_state`` / ``load_rank_state``:
  per-process extras that must survive a resume (CycleGAN's image pools).
"""
from typing import Dict, Iterable

import torch
from torch import nn

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def init_weights(module: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """Upstream's ``init_weights``: conv/linear weights from N(0, gain) (or xavier/kaiming/
    orthogonal with ``gain``), biases 0; affine norm scales from N(1, gain). Spectral-norm
    convs have their real parameter (``weight_orig``) initialised."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type must be one of {', '.join(INIT_TYPES)}, got {init_type!r}")

    def initialise(m: nn.Module) -> None:
        name = type(m).__name__
        weight = getattr(m, "weight_orig", None)
        if not isinstance(weight, nn.Parameter):
            weight = getattr(m, "weight", None)
        if ("Conv" in name or "Linear" in name) and isinstance(weight, nn.Parameter):
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(weight, gain=gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in name and isinstance(weight, nn.Parameter):
            nn.init.normal_(weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    module.apply(initialise)


def set_requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)


def adam(parameters: Iterable[nn.Parameter], lr: float, betas) -> torch.optim.Adam:
    return torch.optim.Adam(list(parameters), lr=lr, betas=tuple(betas))


class Recipe:
    """Base class: subclasses fill ``modules``/``optimizers`` and implement ``train_step``."""

    modules: Dict[str, nn.Module]
    optimizers: Dict[str, torch.optim.Optimizer]

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        raise NotImplementedError

    @property
    def generators(self) -> Dict[str, nn.Module]:
        return {"G": self.modules["G"]}

    def translate(self, inputs: torch.Tensor) -> torch.Tensor:
        return next(iter(self.generators.values()))(inputs)

    @property
    def visuals(self) -> Dict[str, torch.Tensor]:
        return {}

    def rank_state(self) -> Dict[str, torch.Tensor]:
        return {}

    def load_rank_state(self, state: Dict[str, torch.Tensor]) -> None:
        pass

    def train(self, mode: bool = True) -> None:
        for module in self.modules.values():
            module.train(mode)

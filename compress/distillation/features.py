"""Feature distillation of GAN Compression: mapped layers, forward hooks, 1x1 adaptors, the loss.

The student learns to reproduce the teacher's intermediate activations at a few *mapped
layers* (upstream's ``distillers/base_resnet_distiller.py`` and
``spade_modules/base_spade_distiller_modules.py``):

- ResNet family: ``model.9`` (after the second down-sampling conv, norm and ReLU: the start of
  the residual trunk) and the outputs of the last block of each third (``model.12``,
  ``model.15``, ``model.18`` for 9 blocks);
- SPADE family: ``head_0``, ``G_middle_1`` (16*ngf channels) and ``up_1`` (4*ngf).

The activations are read with forward hooks (`FeatureHooks`), so the generators stay unaware of
distillation. Student and teacher widths differ, so each student feature goes through a learned
1x1 convolution with bias (`Adaptors`) before the MSE against the teacher feature. The adaptors
are `SuperConv2d` layers built at the student's *maximum* width: they slice their input
channels to whatever arrives, which is what a supernet needs (every sampled sub-network has its
own trunk width) and is a no-op for a fixed student. They are trained with the generator's
optimiser. Loss: ``sum_l MSE(adaptor_l(S_l), T_l)``.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.layers import SuperConv2d


def mapped_layers(model: nn.Module) -> Tuple[str, ...]:
    """Names of the modules whose outputs are distilled, for a zoo generator of either family."""
    if model.family == "spade":
        return ("head_0", "G_middle_1", "up_1")
    n_blocks = len(model.widths.inner)
    if n_blocks < 3:
        raise ValueError(f"feature distillation needs at least 3 residual blocks, got {n_blocks}")
    # model.9 = the ReLU after the second down conv; blocks are model.10 .. model.(9 + n)
    return ("model.9",) + tuple(f"model.{9 + n_blocks * k // 3}" for k in (1, 2, 3))


def feature_widths(model: nn.Module) -> List[int]:
    """Channels of each mapped layer's output; for a supernet, at its maximum width."""
    if model.family == "resnet":
        widths = getattr(model, "max_widths", model.widths)
        return [widths.trunk] * len(mapped_layers(model))
    if hasattr(model, "set_config") or not hasattr(model, "widths"):  # supernet or full-width net
        return [16 * model.ngf, 16 * model.ngf, 4 * model.ngf]
    widths = model.widths  # a standalone sub-network
    return [widths.trunk, widths.trunk, widths.blocks["up_1"].channel]


class FeatureHooks:
    """Forward hooks that capture the outputs of named modules during `run`.

    ``hooks.run(model, x)`` -> ``(output, [feature per name])``; outside `run` the hooks record
    nothing (evaluation forwards keep no activations alive). `remove` detaches them.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]):
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(f"{type(model).__name__} has no module(s) {', '.join(missing)} to distill from")
        self.names = tuple(names)
        self._sink: Optional[Dict[str, torch.Tensor]] = None
        self._handles = [modules[n].register_forward_hook(self._hook(n)) for n in self.names]

    def _hook(self, name: str) -> Callable:
        def hook(module, inputs, output):
            if self._sink is not None:
                self._sink[name] = output
        return hook

    def run(self, fn: Callable, *args, **kwargs) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        self._sink = {}
        try:
            output = fn(*args, **kwargs)
            absent = [n for n in self.names if n not in self._sink]
            if absent:
                raise RuntimeError(f"mapped layer(s) {', '.join(absent)} did not run in this forward pass")
            features = [self._sink[n] for n in self.names]
        finally:
            self._sink = None
        return output, features

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class Adaptors(nn.Module):
    """One 1x1 conv (with bias) per mapped layer, student width -> teacher width; accepts any
    student width up to the one it was built for (leading-channel slicing)."""

    def __init__(self, student_widths: Sequence[int], teacher_widths: Sequence[int]):
        super().__init__()
        if len(student_widths) != len(teacher_widths):
            raise ValueError(f"{len(student_widths)} student vs {len(teacher_widths)} teacher mapped layers")
        self.convs = nn.ModuleList(SuperConv2d(int(s), int(t), 1, bias=True)
                                   for s, t in zip(student_widths, teacher_widths))

    def forward(self, features: Sequence[torch.Tensor]) -> List[torch.Tensor]:  # type: ignore[override]
        return [conv(feature) for conv, feature in zip(self.convs, features)]


def distill_loss(adapted: Sequence[torch.Tensor], teacher_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_l MSE(adapted_l, teacher_l)``; teacher features are constants."""
    if len(adapted) != len(teacher_features) or not adapted:
        raise ValueError("distillation needs one adapted student feature per teacher feature")
    total = adapted[0].new_zeros(())
    for student, teacher in zip(adapted, teacher_features):
        if student.shape != teacher.shape:
            raise ValueError(f"adapted student feature {tuple(student.shape)} does not match the teacher's "
                             f"{tuple(teacher.shape)}; the two generators must share their layout")
        total = total + F.mse_loss(student, teacher.detach())
    return total


def run_generator(model: nn.Module, x: torch.Tensor, config=None) -> torch.Tensor:
    """``model(x)``, or ``model(x, config=config)`` for a supernet sub-network."""
    return model(x) if config is None else model(x, config=config)

"""L1-norm channel pruning of a ResNet-family teacher (or a trained sub-network) into a narrower
student (the "pre-distillation" step of the original GAN Compression flow, upstream
``utils/weight_transfer.py``).

For every layer whose width shrinks, the kept output channels are the ``k`` filters with the
largest L1 norm ``sum |W|`` (over input channels and kernel; for a transposed convolution, whose
weight is [in, out, kh, kw], over in/kh/kw). The kept indices are propagated to the next
layer's *inputs*; a depthwise conv simply follows its input's indices; and every residual block
output is forced onto the indices chosen for the trunk (``model.7``), because all blocks add into
the same channels. Kept channels stay in their original order. If a dropped channel never
influences a kept one, the student computes exactly the teacher's kept activations.

    student = prune_resnet(mobile_teacher, 48)                 # MobileResnetGenerator ngf 48
    student = prune_resnet(mobile_teacher, "32_32_48_32_48_48_16_16")   # a sub-network
    student = prune_resnet(sub_network, "16_16_16_32_8_8_16_8")         # a narrower sub-network

The source may itself be a sub-network (``sub_mobile_resnet_9blocks``): a trained compact student
can then be narrowed in some layers before being grown in others (``compress.distill``'s
``init_student`` fills the wider ones), to move its compute between layers without starting over.
"""
from typing import Dict, Optional, Union

import torch
from torch import nn

from compress.models import build_generator
from compress.models.resnet import (MobileResnetGenerator, ResnetGenerator, ResnetWidths,
                                   SubMobileResnetGenerator)

Indices = torch.Tensor


def top_l1_channels(weight: torch.Tensor, k: int, dim: int = 0) -> Indices:
    """The ``k`` indices along ``dim`` with the largest ``sum |W|`` over the other dims, in
    ascending order (ties keep the lower index)."""
    if not 0 < k <= weight.size(dim):
        raise ValueError(f"cannot keep {k} of {weight.size(dim)} channels")
    dims = [d for d in range(weight.dim()) if d != dim]
    importance = weight.detach().abs().sum(dim=dims)
    order = torch.sort(-importance, stable=True).indices  # largest first, ties by index
    return torch.sort(order[:k]).values


def _student_for(teacher: nn.Module, student: Union[int, str, tuple, list]) -> nn.Module:
    common = dict(input_nc=teacher.input_nc, output_nc=teacher.output_nc, n_blocks=len(teacher.widths.inner))
    if isinstance(student, int):
        arch = "resnet_9blocks" if isinstance(teacher, ResnetGenerator) else "mobile_resnet_9blocks"
        return build_generator(arch, ngf=student, **common)
    if isinstance(teacher, ResnetGenerator):
        raise ValueError("a dense resnet_9blocks teacher prunes to a narrower resnet_9blocks: "
                         "give an int ngf")
    return build_generator("sub_mobile_resnet_9blocks", config=student, **common)


def channel_plan(teacher: nn.Module, widths: ResnetWidths) -> Dict[str, Indices]:
    """Kept output channels per layer key (``model.1``, ``model.10.conv_block.1``, ...)."""
    state = teacher.state_dict()
    mobile = not isinstance(teacher, ResnetGenerator)
    plan: Dict[str, Indices] = {}

    def weight(key: str) -> torch.Tensor:
        return state[f"{key}.conv.2.weight" if mobile and ".conv_block." in key else f"{key}.weight"]

    plan["model.1"] = top_l1_channels(weight("model.1"), widths.stem)
    plan["model.4"] = top_l1_channels(weight("model.4"), widths.down1)
    plan["model.7"] = top_l1_channels(weight("model.7"), widths.trunk)
    for i, inner in enumerate(widths.inner):
        block = f"model.{10 + i}.conv_block"
        plan[f"{block}.1"] = top_l1_channels(weight(f"{block}.1"), inner)
        plan[f"{block}.6"] = plan["model.7"]  # residual outputs share the trunk's channels
    up = 10 + len(widths.inner)
    plan[f"model.{up}"] = top_l1_channels(weight(f"model.{up}"), widths.up1, dim=1)
    plan[f"model.{up + 3}"] = top_l1_channels(weight(f"model.{up + 3}"), widths.up2, dim=1)
    return plan


def prune_resnet(teacher: nn.Module, student: Union[int, str, tuple, list]) -> nn.Module:
    """A student of the teacher's kind (ngf ``student``) or a sub-network (config ``student``),
    holding the teacher's top-L1 channels. The teacher may be a dense or mobile ResNet generator or
    a sub-network. Raises ValueError when the student is wider."""
    if not isinstance(teacher, (ResnetGenerator, MobileResnetGenerator, SubMobileResnetGenerator)):
        raise ValueError(f"prune_resnet takes a resnet_9blocks, mobile_resnet_9blocks or "
                         f"sub_mobile_resnet_9blocks teacher, got {type(teacher).__name__}")
    model = _student_for(teacher, student)
    if not model.widths.fits_in(teacher.widths):
        source = f"config {teacher.config}" if hasattr(teacher, "config") else f"ngf {teacher.ngf}"
        raise ValueError(f"the student ({student}) is wider than the teacher ({source}) somewhere; "
                         "pruning can only remove channels")
    plan = channel_plan(teacher, model.widths)
    mobile = not isinstance(teacher, ResnetGenerator)
    source = teacher.state_dict()
    target: Dict[str, torch.Tensor] = {}

    def take(key: str, in_index: Optional[Indices], out_index: Optional[Indices], transposed=False) -> None:
        weight = source[f"{key}.weight"]
        in_dim, out_dim = (0, 1) if transposed else (1, 0)
        if in_index is not None:
            weight = weight.index_select(in_dim, in_index)
        if out_index is not None:
            weight = weight.index_select(out_dim, out_index)
        target[f"{key}.weight"] = weight.clone()
        bias = source[f"{key}.bias"]
        target[f"{key}.bias"] = (bias if out_index is None else bias.index_select(0, out_index)).clone()

    def depthwise(key: str, index: Indices) -> None:
        target[f"{key}.weight"] = source[f"{key}.weight"].index_select(0, index).clone()
        target[f"{key}.bias"] = source[f"{key}.bias"].index_select(0, index).clone()

    def conv3(key: str, in_index: Indices, out_index: Indices) -> None:
        if mobile:  # separable: depthwise follows the input, pointwise maps in -> out
            depthwise(f"{key}.conv.0", in_index)
            take(f"{key}.conv.2", in_index, out_index)
        else:
            take(key, in_index, out_index)

    take("model.1", None, plan["model.1"])
    take("model.4", plan["model.1"], plan["model.4"])
    take("model.7", plan["model.4"], plan["model.7"])
    trunk = plan["model.7"]
    for i in range(len(model.widths.inner)):
        block = f"model.{10 + i}.conv_block"
        conv3(f"{block}.1", trunk, plan[f"{block}.1"])
        conv3(f"{block}.6", plan[f"{block}.1"], trunk)
    up = 10 + len(model.widths.inner)
    take(f"model.{up}", trunk, plan[f"model.{up}"], transposed=True)
    take(f"model.{up + 3}", plan[f"model.{up}"], plan[f"model.{up + 3}"], transposed=True)
    take(f"model.{up + 7}", plan[f"model.{up + 3}"], None)
    model.load_state_dict(target, strict=True)
    return model


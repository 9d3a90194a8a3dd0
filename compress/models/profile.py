"""MACs and parameter counts of generators, in the paper's convention and in true MACs.

The command line is ``compress/profile.py`` (``python -m compress.profile --arch ... --config ...``).

The GAN Compression paper counted MACs with torchprofile on a batch of one. That convention has
two quirks worth knowing, both reproduced here so the paper's numbers come out exactly:

- a transposed convolution is counted once per *output* element (stride^2 = 4x its real cost);
- InstanceNorm counts one MAC per element even without affine parameters (the torchprofile of
  2020 did; today's release skips parameter-free norms), element-wise ``mul`` counts one per
  element, LeakyReLU, BatchNorm, add, ReLU, padding and nearest up-sampling count nothing.

"True" MACs count each transposed convolution once per *input* position instead, which is
what the hardware executes. Tracing goes through torchprofile's own tracer; only the handlers
above differ from its current defaults.
"""
import argparse
import math
import warnings
from typing import Dict, Sequence, Tuple

import torch
from torch import nn

# torchprofile is a compress/ dependency only (paper-convention MACs); engines/ never imports it.
try:  # torchprofile >= 0.1
    from torchprofile.handlers import HANDLER_MAP as _TP_HANDLERS
    from torchprofile.trace import trace as _tp_trace
except ImportError:  # torchprofile 0.0.x (Python 3.8)
    from torchprofile.handlers import handlers as _tp_handler_pairs
    from torchprofile.utils.trace import trace as _tp_trace
    _TP_HANDLERS = {op: func for ops, func in _tp_handler_pairs for op in ops}


def _zero(node) -> int:
    return 0


# The 2020 rules that differ from today's torchprofile (see the module docstring).
PAPER_RULES = {
    "aten::instance_norm": lambda node: math.prod(node.outputs[0].shape),
    "aten::batch_norm": _zero,
    "aten::leaky_relu": _zero,
    "aten::leaky_relu_": _zero,
    "aten::pad": _zero,
    "aten::reflection_pad2d": _zero,
    "aten::upsample_nearest2d": _zero,
}


def paper_macs(model: nn.Module, example: torch.Tensor) -> int:
    """MACs of ``model(example)`` under the GAN Compression paper's torchprofile convention."""
    handlers = dict(_TP_HANDLERS)
    handlers.update(PAPER_RULES)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript-tracer deprecation chatter
        graph = _tp_trace(model, (example,))
    total = 0
    unknown = set()
    for node in graph.nodes:
        if node.operator not in handlers:
            unknown.add(node.operator)
        elif handlers[node.operator] is not None:  # None marks a zero-cost op
            total += int(handlers[node.operator](node))
    if unknown:
        warnings.warn(f"MACs of these ops are not counted (no torchprofile handler): {sorted(unknown)}",
                      stacklevel=2)
    return total


def _transposed_conv_correction(model: nn.Module, example: torch.Tensor) -> int:
    """Paper MACs minus this = true MACs: each ConvTranspose counted per input, not per output."""
    correction = [0]

    def hook(module, inputs, output):
        x = inputs[0]
        k = math.prod(module.kernel_size)
        per_output = output.numel() * x.size(1) * k // module.groups
        per_input = x.numel() * output.size(1) * k // module.groups
        correction[0] += per_output - per_input

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.ConvTranspose2d)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return correction[0]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, int]:
    """Profile ``model`` on a random input of ``input_shape`` (N, C, H, W); N should be 1.

    Returns ``{"macs": paper-convention MACs, "true_macs": ..., "params": ...}``.
    """
    was_training = model.training
    model.eval()
    try:
        example = torch.randn(*input_shape)
        macs = paper_macs(model, example)
        true_macs = macs - _transposed_conv_correction(model, example)
    finally:
        model.train(was_training)
    return {"macs": macs, "true_macs": true_macs, "params": count_params(model)}


def parse_size(text: str) -> Tuple[int, int]:
    """``"256"`` -> (256, 256); ``"256x512"`` -> (256, 512) as height x width."""
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"bad size {text!r}: use 256 or HEIGHTxWIDTH such as 256x512") from None
    if len(sizes) == 1:
        return sizes[0], sizes[0]
    if len(sizes) == 2 and all(s > 0 for s in sizes):
        return sizes[0], sizes[1]
    raise ValueError(f"bad size {text!r}: use 256 or HEIGHTxWIDTH such as 256x512")


def human(value: float) -> str:
    """56799264768 -> '56.80G' (powers of 1000, as the paper writes MACs)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def add_build_arguments(parser: argparse.ArgumentParser, arch_required: bool = True) -> None:
    """The generator-building flags shared by the profiler and the checkpoint converter."""
    from compress.models import GENERATORS
    parser.add_argument("--arch", required=arch_required, choices=sorted(GENERATORS),
                        help="generator architecture" + ("" if arch_required else
                             " (guessed from the tensor shapes when omitted)"))
    parser.add_argument("--config", help="channel config string of sub/super networks, "
                                         "e.g. 16_16_32_16_32_32_16_16")
    parser.add_argument("--ngf", type=int, help="base width (teacher, mobile, super and SPADE nets)")
    parser.add_argument("--input-nc", type=int, help="input channels (ResNet family; default 3)")
    parser.add_argument("--output-nc", type=int, help="output channels (default 3)")
    parser.add_argument("--n-blocks", type=int, help="residual blocks (ResNet family; default 9)")
    parser.add_argument("--semantic-nc", type=int, help="SPADE: label classes (+1 instance-edge "
                                                         "channel if used), e.g. 36 for Cityscapes")
    parser.add_argument("--num-upsampling-layers", choices=["normal", "more", "most"],
                        help="SPADE: up-sampling depth (Cityscapes: more)")


def build_kwargs(args: argparse.Namespace) -> Dict[str, object]:
    """Keyword arguments for `build_generator` from the flags the user actually gave."""
    names = ["config", "ngf", "input_nc", "output_nc", "n_blocks", "semantic_nc",
             "num_upsampling_layers"]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def profile_arch(arch: str, size: Tuple[int, int], **kwargs) -> Dict[str, object]:
    """Build ``arch`` with random weights and profile it at ``size`` (height, width)."""
    from compress.models import build_generator
    height, width = size
    if arch.endswith("spade"):
        kwargs.setdefault("crop_size", width)
        kwargs.setdefault("aspect_ratio", width / height)
    model = build_generator(arch, **kwargs)
    counts = count_macs(model, (1, model.input_nc, height, width))
    result: Dict[str, object] = {"arch": arch, "height": height, "width": width}
    result.update({k: v for k, v in kwargs.items() if k not in ("crop_size", "aspect_ratio")})
    result.update(counts)
    return result

"""The ONNX graph of a generator exactly as this project ships it, produced in one place.

`deployable_model` makes the lean eval-mode copy that is exported, and `deployable_graph`
turns it into the ``onnx.ModelProto`` that ships: the exporter (TorchScript at opset 17, or
dynamo at opset 18 + the verified downgrade), onnxslim, IR version 8 and the optional rewrites
(reflect pads as slices, the output conv as stride-2 conv + DepthToSpace). Two callers, one
graph:

- ``export.onnx.export_onnx`` adds the metadata, checks the graph for the TensorRT targets and
  writes the file;
- ``compress.searching.latency.LatencyMeasurer`` times the same graph in ONNX Runtime, with the
  options of the shipped files (`SHIPPED_GRAPH`), so a latency budget is met by what ships.

Why here: compress/ may not import export/ or engines/ (one-way dependencies), while export/
may use compress.models. The graph rewrites themselves are torch-free
(`compress.common.onnx_rewrites`). Change anything that alters the graph and bump
`GRAPH_RECIPE_VERSION`: latency LUT keys carry `graph_recipe`, so stale timings are not reused.
"""
import copy
import inspect
import os
import tempfile
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple

import onnx
import torch
from torch import nn

from compress.common.onnx_contract import INPUT_NAME, MAX_MODEL_SIDE, OUTPUT_NAME
from compress.common.onnx_rewrites import (TARGET_IR_VERSION, TARGET_OPSET, downgrade_to_opset17,
                                           rename_dims, rewrite_output_conv_s2d, rewrite_reflect_pads)
from compress.models import arch_name
from compress.models.checkpoints import default_resolution
from compress.models.extract import extract_subnet
from compress.models.spade import PaddedBatchNorm2d

EXPORTERS = ("auto", "torchscript", "dynamo")
REFLECT_PAD_MODES = ("keep", "slice")
OUTPUT_CONV_MODES = ("keep", "s2d")
# The options the shipped files were exported with (assets/models/*/*.onnx: metadata "onnx"
# entry; export.placeholders): what the latency search times by default.
SHIPPED_GRAPH = {"exporter": "auto", "reflect_pad": "keep", "output_conv": "s2d"}
# Version of what `deployable_model` + `deployable_graph` produce; bump it whenever the graph of
# the same options changes (a pass, onnxslim's use, the exporter call).
GRAPH_RECIPE_VERSION = 1
_EXAMPLE_SEED = 0  # example values do not shape the graph, but the global RNG stays untouched


def graph_recipe(options: Dict[str, Any]) -> str:
    """A short name of the graph ``options`` produce, e.g.
    ``onnx1(exporter=auto,output_conv=s2d,reflect_pad=keep)``: part of a latency LUT key."""
    return f"onnx{GRAPH_RECIPE_VERSION}(" + ",".join(f"{k}={options[k]}" for k in sorted(options)) + ")"


def check_graph_options(exporter: str = "auto", reflect_pad: str = "keep", output_conv: str = "keep") -> None:
    """ValueError naming the valid choices for an unknown option."""
    for name, value, valid in (("exporter", exporter, EXPORTERS),
                               ("reflect_pad", reflect_pad, REFLECT_PAD_MODES),
                               ("output_conv", output_conv, OUTPUT_CONV_MODES)):
        if value not in valid:
            raise ValueError(f"{name} must be one of {', '.join(valid)}, got {value!r}")


# ----------------------------------------------------------------------------- model preparation

def multiple_of(model: nn.Module) -> int:
    """H and W of the input must be multiples of this: 4 for the ResNet family (two stride-2
    convs), 2**n_up for SPADE (its latent grid)."""
    return 2 ** model.num_upsamplings if model.family == "spade" else 4


def check_size(model: nn.Module, size: Sequence[int]) -> Tuple[int, int]:
    """(H, W) as ints, or ValueError when they are not positive multiples of `multiple_of`."""
    height, width = (int(v) for v in size)
    step = multiple_of(model)
    if height <= 0 or width <= 0 or height % step or width % step:
        raise ValueError(f"size {height}x{width}: {arch_name(model)} needs height and width that are "
                         f"positive multiples of {step}")
    return height, width


def example_input(model: nn.Module, size: Sequence[int], batch: int = 1,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A random valid input: an image in [-1, 1] (ResNet) or a one-hot label map (SPADE)."""
    height, width = size
    if model.family == "spade":
        labels = torch.randint(0, model.input_nc, (batch, height, width), generator=generator)
        return nn.functional.one_hot(labels, model.input_nc).permute(0, 3, 1, 2).float()
    return torch.rand(batch, model.input_nc, height, width, generator=generator) * 2 - 1


def deployable_model(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` that exports to a lean graph with the same outputs.

    - a supernet becomes its standalone sub-network at the active config;
    - spectral norm (SPADE teachers) is baked into plain weights;
    - a sub-network's `PaddedBatchNorm2d` (statistics kept at supernet width; narrower inputs
      zero-padded, normalised, sliced back) becomes a plain BatchNorm2d over the leading
      statistics, which in eval mode is the same per-channel affine map without the
      ConstantOfShape/Concat/Slice detour (widths are read on a probe forward).
    """
    if hasattr(model, "make_subnet"):
        model = extract_subnet(model, model.config)
    else:
        model = copy.deepcopy(model)
    model.eval()
    if hasattr(model, "remove_spectral_norm"):
        model.remove_spectral_norm()
    padded = {name: m for name, m in model.named_modules() if isinstance(m, PaddedBatchNorm2d)}
    if padded:
        widths: Dict[str, set] = {name: set() for name in padded}
        hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: widths[name].add(args[0].size(1)))
                 for name, m in padded.items()]
        probe = example_input(model, default_resolution(model),
                              generator=torch.Generator().manual_seed(_EXAMPLE_SEED))
        try:
            with torch.no_grad():
                model(probe)
        finally:
            for hook in hooks:
                hook.remove()
        for name, module in padded.items():
            if len(widths[name]) != 1:
                continue  # unused or run at several widths: leave it as it is
            width = widths[name].pop()
            plain = nn.BatchNorm2d(width, eps=module.eps, momentum=module.momentum, affine=False)
            with torch.no_grad():
                plain.running_mean.copy_(module.running_mean[:width])
                plain.running_var.copy_(module.running_var[:width])
                plain.num_batches_tracked.copy_(module.num_batches_tracked)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, plain.eval())
    return model


# ----------------------------------------------------------------------------- exporters

def _legacy_export(model: nn.Module, example: torch.Tensor, path: str, dynamic: bool) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    kwargs: Dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.5; older ones (JetPack's 2.1) are legacy already
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript deprecation and tracer chatter
        torch.onnx.export(model, (example,), path, opset_version=TARGET_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes} if dynamic else None,
                          do_constant_folding=True, **kwargs)


def _dynamo_export(model: nn.Module, example: torch.Tensor, path: str, dynamic: bool) -> None:
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise RuntimeError(f"torch {torch.__version__} has no dynamo ONNX exporter; "
                           "use exporter='torchscript'")
    shapes = None
    if dynamic:
        from torch.export import Dim
        step = multiple_of(model)
        # torch.export gives dims with equal example values one symbol ("duck sizing") and then
        # ties the batch to the latent grid: trace with a batch unlike every spatial size.
        height, width = example.shape[2:]
        batch = min(set(range(2, 8)) - {height, width, height // step, width // step})
        example = example[:1].expand(batch, -1, -1, -1).contiguous()
        # derived dims: H and W are multiples of `step` (the forward checks it)
        bound = MAX_MODEL_SIDE // step
        shapes = ({0: Dim("batch", min=1, max=1024), 2: step * Dim("h", min=1, max=bound),
                   3: step * Dim("w", min=1, max=bound)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, dynamo=True, opset_version=18,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes=shapes, external_data=False, verbose=False)


def run_exporter(exporter: str, model: nn.Module, example: torch.Tensor, path: str,
                 dynamic: bool) -> str:
    """Export with the chosen exporter; returns the one that ran."""
    if exporter == "auto":
        try:
            _legacy_export(model, example, path, dynamic)
            return "torchscript"
        except (NotImplementedError, AttributeError) as error:  # the legacy exporter is gone
            warnings.warn(f"legacy ONNX exporter unavailable ({error}); using dynamo + opset "
                          "downgrade", stacklevel=4)  # the caller of export_onnx
            exporter = "dynamo"
    if exporter == "torchscript":
        _legacy_export(model, example, path, dynamic)
    elif exporter == "dynamo":
        _dynamo_export(model, example, path, dynamic)
    else:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    return exporter


def slim(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's cleaned copy (folds the exporter's shape plumbing, inlines functions)."""
    import onnxslim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnxslim.slim(model)


# ----------------------------------------------------------------------------- the graph

def deployable_graph(deploy: nn.Module, size: Sequence[int], dynamic: bool = False,
                     exporter: str = "auto", reflect_pad: str = "keep",
                     output_conv: str = "keep") -> Tuple[onnx.ModelProto, Dict[str, Any]]:
    """The ONNX graph that ships for ``deploy`` (a `deployable_model` copy) at ``size`` (H, W).

    ``dynamic=True`` names batch/height/width dims (``size`` is then the tracing size);
    ``reflect_pad="slice"`` and ``output_conv="s2d"`` apply those rewrites (see
    `compress.common.onnx_rewrites`). No metadata and no deployability checks: the caller adds
    what it needs (``export.onnx`` both). Returns ``(graph, info)`` with info {"exporter" (the
    one that ran), "nodes_exported" (before onnxslim), "reflect_pads_rewritten",
    "output_convs_rewritten"}. Raises ValueError for a bad size or option.
    """
    check_graph_options(exporter, reflect_pad, output_conv)
    size = check_size(deploy, size)
    example = example_input(deploy, size, generator=torch.Generator().manual_seed(_EXAMPLE_SEED))
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        raw_path = os.path.join(scratch, "raw.onnx")
        used = run_exporter(exporter, deploy, example, raw_path, dynamic)
        graph = onnx.load(raw_path)
    nodes_exported = len(graph.graph.node)
    graph = slim(graph)
    if used == "dynamo":
        graph = downgrade_to_opset17(graph)
        if dynamic:  # dynamo names derived dims like "4*h": use the contract's names
            dims = [value.type.tensor_type.shape.dim
                    for value in (graph.graph.input[0], graph.graph.output[0])]
            rename_dims(graph, {d[i].dim_param: name for d in dims
                                for i, name in ((0, "batch"), (2, "height"), (3, "width"))
                                if d[i].dim_param})
    graph.ir_version = TARGET_IR_VERSION  # the exporters write 8 (legacy) or 10 (dynamo, downgraded)
    rewritten = rewrite_reflect_pads(graph) if reflect_pad == "slice" else 0
    # ConvTranspose as sub-pixel Conv + DepthToSpace was tried the same way and measured slower
    # on ONNX Runtime CPU (124 vs 118 ms for 24_24_40_56_24_56_16_40 at 256x256, 1 thread).
    output_convs = rewrite_output_conv_s2d(graph) if output_conv == "s2d" else 0
    return graph, {"exporter": used, "nodes_exported": nodes_exported,
                   "reflect_pads_rewritten": rewritten, "output_convs_rewritten": output_convs}

"""Export any zoo generator to an ONNX file that TensorRT 8.5 (Xavier), 10 and 11 all parse.

``python -m export.onnx CKPT -o model.onnx [--size HxW | --dynamic] [--check] [--reflect-pad slice]``

What the file looks like: opset 17, IR version 8 (asserted), input ``input`` [N, C, H, W]
float32 and output ``output`` [N, 3, H, W] in [-1, 1]; fixed [1, C, H, W] by default (the
checkpoint's resolution), or dims named ``batch``/``height``/``width`` with ``--dynamic``. The
checkpoint metadata (arch, build arguments, palette, input kind, resolution, MACs, params) is
JSON under ``metadata_props["gan_compression"]`` plus an ``onnx`` entry describing the export
(see `export_onnx`); read it back without torch with `engines.onnx_engine.read_onnx_metadata`.

Exporter. The legacy TorchScript exporter (``dynamo=False``) is the default: it writes a true
opset-17 graph, while the dynamo exporter, asked for 17, silently leaves a model with reflection
padding at opset 18 (its converter has no Pad adapter). The legacy path is deprecated in torch
2.9+, so ``exporter="dynamo"`` (and ``"auto"`` when the legacy one is gone) exports at opset 18
and converts with the verified `downgrade_to_opset17` pass. Either way onnxslim then folds the
exporter's shape plumbing, and the result must pass `check_deployable` before it is written
(atomically; an existing file is replaced only with ``--force`` / ``overwrite=True``).

Supernets are exported at their *active* config: the standalone sub-network is extracted first
(`compress.models.extract_subnet`), so the file and its metadata describe exactly what runs.
"""
import argparse
import copy
import inspect
import os
import sys
import tempfile
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch
from torch import nn

from compress.models.checkpoints import (INPUT_KINDS, CheckpointError, atomic_write, default_resolution,
                                  generator_metadata, load_generator)
from compress.models import arch_name, build_generator, extract_subnet
from compress.models.spade import PaddedBatchNorm2d
from engines.base import INPUT_NAME, MAX_MODEL_SIDE, OUTPUT_NAME
from engines.onnx_engine import read_onnx_metadata
from export.onnx_passes import (TARGET_IR_VERSION, TARGET_OPSET, OnnxCompatibilityError,
                                check_deployable, downgrade_to_opset17, io_shape, op_counts,
                                rename_dims, rewrite_output_conv_s2d, rewrite_reflect_pads,
                                set_metadata)

EXPORTERS = ("auto", "torchscript", "dynamo")
REFLECT_PAD_MODES = ("keep", "slice")
OUTPUT_CONV_MODES = ("keep", "s2d")
DEFAULT_ATOL = 1e-4  # fp32 ONNX Runtime vs PyTorch
MAX_SIDE = MAX_MODEL_SIDE  # largest H or W a dynamic export accepts (dynamo needs a bound)

__all__ = ["export_onnx", "check_onnx", "image_input", "example_input", "deployable_model",
           "export_metadata", "check_sizes", "multiple_of", "read_onnx_metadata",
           "OnnxCompatibilityError", "main"]


# ----------------------------------------------------------------------------- model preparation

def multiple_of(model: nn.Module) -> int:
    """H and W of the input must be multiples of this: 4 for the ResNet family (two stride-2
    convs), 2**n_up for SPADE (its latent grid)."""
    return 2 ** model.num_upsamplings if model.family == "spade" else 4


def _check_size(model: nn.Module, size: Sequence[int]) -> Tuple[int, int]:
    height, width = (int(v) for v in size)
    step = multiple_of(model)
    if height <= 0 or width <= 0 or height % step or width % step:
        raise ValueError(f"size {height}x{width}: {arch_name(model)} needs height and width that are "
                         f"positive multiples of {step}")
    return height, width


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
        try:
            with torch.no_grad():
                model(example_input(model, default_resolution(model)))
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


def example_input(model: nn.Module, size: Sequence[int], batch: int = 1,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A random valid input: an image in [-1, 1] (ResNet) or a one-hot label map (SPADE)."""
    height, width = size
    if model.family == "spade":
        labels = torch.randint(0, model.input_nc, (batch, height, width), generator=generator)
        return nn.functional.one_hot(labels, model.input_nc).permute(0, 3, 1, 2).float()
    return torch.rand(batch, model.input_nc, height, width, generator=generator) * 2 - 1


def image_input(model: nn.Module, path: str, size: Sequence[int],
                palette: Optional[str] = None) -> np.ndarray:
    """A real input for ``model`` at ``size`` from an image file, as [1, C, H, W] float32,
    made by the app's pre-processing (`engines.preprocess`, through the file readers of
    `export.trt_calibration`).

    ResNet family: an RGB photo scaled to [-1, 1]. SPADE: a label map (8-bit ids, or colours of
    ``palette``) turned into a one-hot map; ids must fit the model's ``semantic_nc`` channels.
    """
    from export.trt_calibration import input_preprocessor, load_model_input
    height, width = (int(v) for v in size)
    meta = {"arch": arch_name(model), "palette": palette,
            "input_kind": "label" if model.family == "spade" else "image"}
    preprocessor = input_preprocessor(meta, (1, model.input_nc, height, width), path)
    array = load_model_input(path, preprocessor)[None]
    channels = array.reshape(array.shape[1], -1)
    if model.family == "resnet" and float(np.ptp(channels, axis=1).max()) == 0.0:  # each channel constant
        raise ValueError(f"{path} is a constant image: on it every InstanceNorm divides float rounding "
                         "noise by sqrt(eps), so PyTorch and ONNX Runtime legitimately disagree (by up to "
                         "2); parity is undefined there (the app shows blank canvases without inference). "
                         "Check with an image that has content")
    return array


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
        shapes = ({0: Dim("batch", min=1, max=1024), 2: step * Dim("h", min=1, max=MAX_SIDE // step),
                   3: step * Dim("w", min=1, max=MAX_SIDE // step)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, dynamo=True, opset_version=18,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes=shapes, external_data=False, verbose=False)


def _run_exporter(exporter: str, model: nn.Module, example: torch.Tensor, path: str,
                  dynamic: bool) -> str:
    """Export with the chosen exporter; returns the one that ran."""
    if exporter == "auto":
        try:
            _legacy_export(model, example, path, dynamic)
            return "torchscript"
        except (NotImplementedError, AttributeError) as error:  # the legacy exporter is gone
            warnings.warn(f"legacy ONNX exporter unavailable ({error}); using dynamo + opset "
                          "downgrade", stacklevel=3)
            exporter = "dynamo"
    if exporter == "torchscript":
        _legacy_export(model, example, path, dynamic)
    elif exporter == "dynamo":
        _dynamo_export(model, example, path, dynamic)
    else:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    return exporter


def _slim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnxslim.slim(model)


# ----------------------------------------------------------------------------- export

def export_metadata(model: nn.Module, meta: Optional[Dict[str, Any]], resolution: Sequence[int],
                    source_arch: Optional[str] = None) -> Dict[str, Any]:
    """The checkpoint metadata for the exported ``model`` (the deployable copy).

    Keys the model determines (arch, build, MACs, params) are recomputed when the given
    metadata does not describe it at ``resolution``; palette, input kind and extras are kept.
    ``source_arch`` names the supernet a sub-network was extracted from.
    """
    meta = dict(meta or {})
    arch = arch_name(model)
    resolution = [int(v) for v in resolution]
    if meta.get("arch") != arch or list(meta.get("resolution") or []) != resolution or "macs" not in meta:
        meta.update(generator_metadata(model, resolution=tuple(resolution), palette=meta.get("palette"),
                                       input_kind=meta.get("input_kind")))
    if source_arch and source_arch != arch:
        meta["extracted_from"] = {"arch": source_arch, "config": model.config}
    return meta


def export_onnx(model: nn.Module, path: str, meta: Optional[Dict[str, Any]] = None,
                size: Optional[Sequence[int]] = None, dynamic: bool = False,
                reflect_pad: str = "keep", overwrite: bool = False,
                exporter: str = "auto", output_conv: str = "keep") -> Dict[str, Any]:
    """Export ``model`` (any zoo generator) to ``path`` and return a summary dict.

    ``size`` (H, W) fixes the input shape (default: ``meta["resolution"]``, else the model's
    default); with ``dynamic=True`` batch/height/width are dynamic and ``size`` is only the
    tracing size. ``reflect_pad="slice"`` rewrites reflect Pads into Slice + Concat.
    ``output_conv="s2d"`` computes the narrow full-resolution output conv as a stride-2 conv +
    DepthToSpace (same result; ~1.5x faster generators on ONNX Runtime CPU, see
    `export.onnx_passes.rewrite_output_conv_s2d`).
    ``meta`` is the checkpoint metadata (`load_generator`'s second value); what the model
    determines is recomputed when it does not match. The stored metadata gains an ``onnx``
    entry: opset, ir_version, exporter, dynamic, input_shape, output_shape, multiple_of,
    reflect_pad, torch. Raises FileExistsError (no ``overwrite``), ValueError for a bad size or
    option, OnnxCompatibilityError when the graph would not load on the TensorRT targets.

    Returns {"path", "exporter", "opset", "ir_version", "nodes_exported", "nodes", "op_counts",
    "reflect_pads_rewritten", "input_shape", "output_shape", "metadata", "bytes", "seconds"}.
    """
    if reflect_pad not in REFLECT_PAD_MODES:
        raise ValueError(f"reflect_pad must be one of {', '.join(REFLECT_PAD_MODES)}, got {reflect_pad!r}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if output_conv not in OUTPUT_CONV_MODES:
        raise ValueError(f"output_conv must be one of {', '.join(OUTPUT_CONV_MODES)}, got {output_conv!r}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")
    start = time.perf_counter()
    source_arch = arch_name(model)
    deploy = deployable_model(model)
    if size is None:
        size = (meta or {}).get("resolution") or default_resolution(deploy)
    size = _check_size(deploy, size)
    meta = export_metadata(deploy, meta, size, source_arch)

    with tempfile.TemporaryDirectory(prefix="onnx-export-") as scratch:
        raw_path = os.path.join(scratch, "raw.onnx")
        used = _run_exporter(exporter, deploy, example_input(deploy, size), raw_path, dynamic)
        graph = onnx.load(raw_path)
    nodes_exported = len(graph.graph.node)
    graph = _slim(graph)
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
    check_deployable(graph, reflect_pad, source=path)

    input_shape, output_shape = io_shape(graph.graph.input[0]), io_shape(graph.graph.output[0])
    meta["onnx"] = {"opset": TARGET_OPSET, "ir_version": TARGET_IR_VERSION, "exporter": used,
                    "dynamic": bool(dynamic), "input_shape": input_shape, "output_shape": output_shape,
                    "multiple_of": multiple_of(deploy), "reflect_pad": reflect_pad,
                    "output_conv": output_conv, "torch": torch.__version__}
    set_metadata(graph, meta)
    graph.producer_name, graph.doc_string = "gan-compression-demo export.onnx", (
        f"{meta['arch']} generator, input '{INPUT_NAME}' {input_shape}, output '{OUTPUT_NAME}'")
    atomic_write(path, lambda temp: onnx.save(graph, temp), overwrite=overwrite)
    return {"path": path, "exporter": used, "opset": TARGET_OPSET, "ir_version": TARGET_IR_VERSION,
            "nodes_exported": nodes_exported, "nodes": len(graph.graph.node),
            "op_counts": op_counts(graph), "reflect_pads_rewritten": rewritten,
            "output_convs_rewritten": output_convs,
            "input_shape": input_shape, "output_shape": output_shape, "metadata": meta,
            "bytes": os.path.getsize(path), "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- parity check

def check_sizes(resolution: Sequence[int], step: int) -> List[Tuple[int, int]]:
    """Two sizes for a dynamic model: its resolution and a non-square neighbour (one step
    smaller in height where that keeps at least two steps, else larger; one step wider)."""
    height, width = (int(v) for v in resolution)
    second = (height - step if height - step >= 2 * step else height + step, width + step)
    return [(height, width), second]


def check_onnx(path: str, model: nn.Module, inputs: Optional[Dict[str, np.ndarray]] = None,
               sizes: Optional[Sequence[Sequence[int]]] = None, seed: int = 0,
               atol: float = DEFAULT_ATOL) -> Dict[str, Any]:
    """Compare ONNX Runtime (CPU, fp32) with ``model`` in PyTorch on fresh random inputs and on
    ``inputs`` (name -> [N, C, H, W] array, e.g. from `image_input`).

    Random inputs are drawn at every size in ``sizes`` (default: the fixed export size, or two
    sizes from `check_sizes` for a dynamic file, the second with batch 2).
    Returns {"max_abs_diff": {input name: float}, "worst": float, "atol": atol, "passed": bool}.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    # no busy-waiting worker threads: parity, not speed, and the CPU may be shared
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    dynamic = not all(isinstance(d, int) for d in shape)
    if sizes is None:
        if dynamic:
            onnx_meta = read_onnx_metadata(path, required=True)
            sizes = check_sizes(onnx_meta["resolution"], onnx_meta["onnx"]["multiple_of"])
        else:
            sizes = [tuple(shape[2:])]
    generator = torch.Generator().manual_seed(seed)
    cases: Dict[str, np.ndarray] = {}
    for i, (height, width) in enumerate(sizes):
        batch = 2 if dynamic and i == 1 else 1
        cases[f"random_{batch}x{height}x{width}"] = example_input(model, (height, width), batch,
                                                                  generator).numpy()
    cases.update(inputs or {})
    was_training = model.training
    model.eval()
    diffs = {}
    try:
        for name, array in cases.items():
            array = np.ascontiguousarray(array, dtype=np.float32)
            with torch.no_grad():
                expected = model(torch.from_numpy(array)).numpy()
            got = session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]
            if got.shape != expected.shape:
                raise AssertionError(f"{path}: output shape {got.shape} != PyTorch {expected.shape}")
            diffs[name] = float(np.abs(got - expected).max())
    finally:
        model.train(was_training)
    worst = max(diffs.values())
    return {"max_abs_diff": diffs, "worst": worst, "atol": atol, "passed": worst <= atol}


# ----------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    from compress.models.profile import add_build_arguments
    parser = argparse.ArgumentParser(
        prog="python -m export.onnx",
        description="Export a generator checkpoint to ONNX (opset 17, IR 8) for ONNX Runtime and "
                    "TensorRT 8.5/10/11, with its metadata, cleaned by onnxslim.",
        epilog="examples:\n"
               "  python -m export.onnx runs/h2z/compressed.safetensors -o h2z.onnx --check\n"
               "  python -m export.onnx horse2zebra_net_G.pth --arch sub_mobile_resnet_9blocks \\\n"
               "      --config 16_16_32_16_32_32_16_16 -o h2z.onnx --dynamic --reflect-pad slice\n"
               "  python -m export.onnx spade.safetensors -o spade.onnx --size 256x512 --check \\\n"
               "      --check-image label.png\n"
               "  python -m export.onnx random --arch resnet_9blocks --ngf 64 -o teacher.onnx\n"
               "Supernet checkpoints export at their active config (the sub-network is extracted).\n"
               "CHECKPOINT 'random' builds --arch with seeded random weights (latency studies only).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="project .safetensors, an official .pth with --arch/--config, "
                                           "or 'random' (random weights of --arch, for latency)")
    parser.add_argument("-o", "--output", required=True, help="output .onnx path")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--size", help="fixed input size HxW (default: the checkpoint's resolution)")
    shape.add_argument("--dynamic", action="store_true",
                       help="dynamic batch/height/width (dims named batch, height, width)")
    parser.add_argument("--reflect-pad", choices=REFLECT_PAD_MODES, default="keep",
                        help="slice: rewrite reflect Pads as Slice+Concat (for TensorRT builds or "
                             "DLA that reject reflect padding); default keep")
    parser.add_argument("--output-conv", choices=OUTPUT_CONV_MODES, default="keep",
                        help="s2d: compute the 3-channel full-resolution output conv as a stride-2 "
                             "conv + DepthToSpace (same result, faster on CPUs whose kernels pad "
                             "channels, e.g. ONNX Runtime); default keep")
    parser.add_argument("--exporter", choices=EXPORTERS, default="auto",
                        help="torchscript (true opset 17), dynamo (opset 18 + downgrade pass), or "
                             "auto (torchscript while torch has it)")
    parser.add_argument("--check", action="store_true",
                        help=f"compare ONNX Runtime with PyTorch (max abs diff <= {DEFAULT_ATOL})")
    parser.add_argument("--check-image", action="append", default=[], metavar="FILE",
                        help="also check on this photo (ResNet) or label map (SPADE); repeatable")
    parser.add_argument("--palette", help="palette name stored in the metadata (label-map models)")
    parser.add_argument("--input-kind", choices=INPUT_KINDS, help="input kind stored in the metadata")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    add_build_arguments(parser, arch_required=False)
    return parser


def _random_generator(overrides: Dict[str, Any], size: Optional[Tuple[int, int]]):
    """A seeded randomly initialised generator with metadata: latency is independent of the
    weights, so benchmarks of architectures need no trained checkpoint."""
    arch = overrides.pop("arch", None)
    if arch is None:
        raise ValueError("'random' needs --arch (and --config / --ngf) to know what to build")
    torch.manual_seed(0)
    model = build_generator(arch, **overrides).eval()
    return model, generator_metadata(model, resolution=size, random_weights=True)


def main(argv: Optional[List[str]] = None) -> int:
    from compress.models.profile import build_kwargs, parse_size
    args = _parser().parse_args(argv)
    try:
        if os.path.exists(args.output) and not args.force:
            raise FileExistsError(f"{args.output} exists; pass --force to replace it")
        overrides = build_kwargs(args)
        if args.arch:
            overrides["arch"] = args.arch
        if args.checkpoint == "random" and not os.path.exists("random"):
            model, meta = _random_generator(overrides, parse_size(args.size) if args.size else None)
        else:
            model, meta = load_generator(args.checkpoint, **overrides)
        meta.setdefault("source", os.path.basename(args.checkpoint))
        for key in ("palette", "input_kind"):
            if getattr(args, key):
                meta[key] = getattr(args, key)
        info = export_onnx(model, args.output, meta=meta,
                           size=parse_size(args.size) if args.size else None, dynamic=args.dynamic,
                           reflect_pad=args.reflect_pad, overwrite=args.force, exporter=args.exporter,
                           output_conv=args.output_conv)
        print(f"wrote {args.output}: {info['metadata']['arch']}, input {info['input_shape']}, "
              f"opset {info['opset']}/IR {info['ir_version']} ({info['exporter']}), "
              f"{info['nodes_exported']} -> {info['nodes']} nodes after onnxslim, "
              f"{info['bytes'] / 1e6:.1f} MB, {info['seconds']:.1f}s")
        if args.check or args.check_image:
            resolution = info["metadata"]["resolution"]
            images = {f"image:{os.path.basename(p)}": image_input(model, p, resolution, meta.get("palette"))
                      for p in args.check_image}
            result = check_onnx(args.output, model, inputs=images)
            for name, diff in result["max_abs_diff"].items():
                print(f"  parity {name}: max abs diff {diff:.3g}")
            if not result["passed"]:
                print(f"error: ONNX Runtime differs from PyTorch by {result['worst']:.3g} "
                      f"(> {result['atol']}); the file is kept for inspection", file=sys.stderr)
                return 1
            print(f"  parity OK (<= {result['atol']})")
        return 0
    except (CheckpointError, OSError, ValueError) as error:  # OnnxCompatibilityError too
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

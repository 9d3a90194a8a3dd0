"""Export any zoo generator to an ONNX file that TensorRT 8.5 (Xavier), 10 and 11 all parse.

``python -m export.onnx CKPT -o model.onnx [--size HxW | --dynamic] [--check] [--reflect-pad slice]``

What the file looks like: opset 17, IR version 8 (asserted), input ``input`` [N, C, H, W]
float32 and output ``output`` [N, 3, H, W] in [-1, 1]; fixed [1, C, H, W] by default (the
checkpoint's resolution), or dims named ``batch``/``height``/``width`` with ``--dynamic``. The
checkpoint metadata (arch, build arguments, palette, input kind, resolution, MACs, params) is
JSON under ``metadata_props["gan_compression"]`` plus an ``onnx`` entry describing the export
(see `export_onnx`); read it back without torch with `engines.onnx_engine.read_onnx_metadata`.

The graph itself (deployable copy of the model, exporter, onnxslim, rewrites) is produced by
`compress.models.onnx_graph.deployable_graph`, the function the latency search of
``compress.search`` times as well; this module adds the metadata, the checks and the write.

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
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch
from torch import nn

from compress.models import arch_name, build_generator
from compress.models.checkpoints import (INPUT_KINDS, CheckpointError, atomic_write, default_resolution,
                                         generator_metadata, load_generator)
from compress.models.onnx_graph import (EXPORTERS, OUTPUT_CONV_MODES, REFLECT_PAD_MODES,
                                        check_graph_options, check_size, deployable_graph,
                                        deployable_model, example_input, multiple_of)
from engines.base import INPUT_NAME, OUTPUT_NAME
from engines.onnx_engine import read_onnx_metadata
from export.onnx_passes import (TARGET_IR_VERSION, TARGET_OPSET, OnnxCompatibilityError,
                                check_deployable, io_shape, op_counts, set_metadata)

DEFAULT_ATOL = 1e-4  # fp32 ONNX Runtime vs PyTorch

# deployable_model, example_input, multiple_of and the option tuples come from
# compress.models.onnx_graph, where the shipped graph is produced (the latency search builds
# its timed graph there too); re-exported for callers of this module.
__all__ = ["export_onnx", "check_onnx", "image_input", "example_input", "deployable_model",
           "export_metadata", "check_sizes", "multiple_of", "read_onnx_metadata",
           "OnnxCompatibilityError", "EXPORTERS", "REFLECT_PAD_MODES", "OUTPUT_CONV_MODES", "main"]


# ----------------------------------------------------------------------------- inputs

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


# ----------------------------------------------------------------------------- export

# metadata of a compute-ladder rung (compress.ladder) that holds only at the size it was timed at
MEASURED_AT_RESOLUTION = ("latency_ms", "teacher_latency_ms", "speedup", "latency_setting")


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
    if meta.get("resolution") and list(meta["resolution"]) != resolution:
        for key in MEASURED_AT_RESOLUTION:  # timed at the checkpoint's size, not this one
            meta.pop(key, None)
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
    `export.onnx_passes.rewrite_output_conv_s2d`). The shipped files are exported with
    `compress.models.onnx_graph.SHIPPED_GRAPH` (s2d), the options the latency search times.
    ``meta`` is the checkpoint metadata (`load_generator`'s second value); what the model
    determines is recomputed when it does not match. The stored metadata gains an ``onnx``
    entry: opset, ir_version, exporter, dynamic, input_shape, output_shape, multiple_of,
    reflect_pad, torch. Raises FileExistsError (no ``overwrite``), ValueError for a bad size or
    option, OnnxCompatibilityError when the graph would not load on the TensorRT targets.

    Returns {"path", "exporter", "opset", "ir_version", "nodes_exported", "nodes", "op_counts",
    "reflect_pads_rewritten", "input_shape", "output_shape", "metadata", "bytes", "seconds"}.
    """
    check_graph_options(exporter, reflect_pad, output_conv)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")
    start = time.perf_counter()
    source_arch = arch_name(model)
    deploy = deployable_model(model)
    if size is None:
        size = (meta or {}).get("resolution") or default_resolution(deploy)
    size = check_size(deploy, size)
    meta = export_metadata(deploy, meta, size, source_arch)
    # the one graph recipe (compress.models.onnx_graph): the latency search times this graph too
    graph, built = deployable_graph(deploy, size, dynamic=dynamic, exporter=exporter,
                                    reflect_pad=reflect_pad, output_conv=output_conv)
    check_deployable(graph, reflect_pad, source=path)

    input_shape, output_shape = io_shape(graph.graph.input[0]), io_shape(graph.graph.output[0])
    used = built["exporter"]
    meta["onnx"] = {"opset": TARGET_OPSET, "ir_version": TARGET_IR_VERSION, "exporter": used,
                    "dynamic": bool(dynamic), "input_shape": input_shape, "output_shape": output_shape,
                    "multiple_of": multiple_of(deploy), "reflect_pad": reflect_pad,
                    "output_conv": output_conv, "torch": torch.__version__}
    set_metadata(graph, meta)
    graph.producer_name, graph.doc_string = "gan-compression-demo export.onnx", (
        f"{meta['arch']} generator, input '{INPUT_NAME}' {input_shape}, output '{OUTPUT_NAME}'")
    atomic_write(path, lambda temp: onnx.save(graph, temp), overwrite=overwrite)
    return {"path": path, "exporter": used, "opset": TARGET_OPSET, "ir_version": TARGET_IR_VERSION,
            "nodes_exported": built["nodes_exported"], "nodes": len(graph.graph.node),
            "op_counts": op_counts(graph), "reflect_pads_rewritten": built["reflect_pads_rewritten"],
            "output_convs_rewritten": built["output_convs_rewritten"],
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

"""ONNX graph passes and checks that make an exported generator load on TensorRT 8.5, 10 and 11.

Everything here works on ``onnx.ModelProto`` alone (onnx + numpy, never torch), so the passes
can be unit-tested on hand-built graphs.

- `check_opset_ir`: the file must declare opset 17 and IR version 8, the newest pair that
  TensorRT 8.5 (JetPack 5.1, Xavier) parses; TRT 10 and 11 read it too.
- the graph rewrites `downgrade_to_opset17`, `rewrite_reflect_pads` (``--reflect-pad slice``),
  `rewrite_output_conv_s2d` (``--output-conv s2d``) and `rename_dims` are defined in
  `compress.common.onnx_rewrites` (the latency search runs them too, and compress/ may not
  import export/) and re-exported here with `OnnxCompatibilityError`, `TARGET_OPSET` and
  `TARGET_IR_VERSION`.
- `check_ops` / `check_trt85_rules`: the op whitelist (`ALLOWED_OPS`) and the few attribute
  rules of the 8.5 importer.
- `set_metadata`: the checkpoint metadata as JSON under ``engines.base.METADATA_KEY`` in
  ``metadata_props``; `engines.onnx_engine.read_onnx_metadata` reads it back (no torch).
"""
import json
from collections import Counter
from typing import Any, Dict, List

import onnx

from compress.common.onnx_rewrites import (TARGET_IR_VERSION, TARGET_OPSET, OnnxCompatibilityError,
                                           default_opset, downgrade_to_opset17, is_reflect_pad,
                                           node_attribute, rename_dims, rewrite_output_conv_s2d,
                                           rewrite_reflect_pads)
from engines.base import METADATA_KEY

__all__ = ["TARGET_OPSET", "TARGET_IR_VERSION", "ALLOWED_OPS", "OnnxCompatibilityError", "op_counts",
           "check_opset_ir", "downgrade_to_opset17", "is_reflect_pad", "rewrite_reflect_pads",
           "rewrite_output_conv_s2d", "check_ops", "check_trt85_rules", "check_deployable",
           "rename_dims", "io_shape", "flat_metadata", "set_metadata"]

# Ops an exported generator may contain. Each is imported natively by TensorRT 8.5 (onnx-tensorrt
# 8.5-GA docs/operators.md) and by 10/11; anything else means the model or the exporter changed
# and the file must be checked on a device before it ships.
ALLOWED_OPS = {
    # compute of the ResNet family
    "Conv": "every convolution (dense, depthwise, pointwise)",
    "ConvTranspose": "the two stride-2 up-sampling layers of the ResNet family",
    "InstanceNormalization": "ResNet norms; a plugin on 8.5, scale/bias must be initializers",
    "Pad": "reflection padding (8.5 imports it as a reflect-mode slice); gone with --reflect-pad slice",
    "Clip": "the generators clamp their input to [-1, 1]",
    "Relu": "activations",
    "Tanh": "output activation",
    "Add": "residual sums; SPADE's 1 + gamma and + beta",
    # compute of the SPADE family
    "BatchNormalization": "SPADE's parameter-free norm with running statistics (eval mode)",
    "LeakyRelu": "SPADE activations (slope 0.2)",
    "Mul": "SPADE modulation: norm(x) * (1 + gamma)",
    "Resize": "SPADE: nearest x2 up-sampling and the label map resized to each block",
    # layout: the --reflect-pad slice form, and Resize sizes of dynamic SPADE exports
    "Slice": "reflect padding as slices (--reflect-pad slice); cutting H, W out of a shape",
    "Concat": "reflect padding as slices; assembling Resize output sizes",
    "DepthToSpace": "--output-conv s2d: the output conv computed at half resolution, 4 phases",
    # shape arithmetic of dynamic SPADE exports: latent grid = (H, W) // 2**n_up
    "Shape": "dynamic SPADE: read H and W of the input",
    "Gather": "dynamic SPADE: pick H or W out of a shape",
    "Unsqueeze": "dynamic SPADE: scalar size -> 1-D for Concat",
    "Div": "dynamic SPADE: integer H // 2**n_up for the latent grid",
    "Squeeze": "dynamic SPADE, dynamo exporter: 1-D size -> scalar",
    "Reshape": "dynamic SPADE, dynamo exporter: shape plumbing of the size computation",
}

# Resize modes the 8.5 importer handles for our graphs (nearest with asymmetric/floor is what
# F.interpolate(mode="nearest") exports; linear modes are listed for completeness).
_RESIZE_MODES = {"nearest", "linear"}


# ----------------------------------------------------------------------------- small helpers

def op_counts(model: onnx.ModelProto) -> Dict[str, int]:
    """{op_type: count} of the main graph, most frequent first."""
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


def check_opset_ir(model: onnx.ModelProto, source: str = "model") -> None:
    """Raise OnnxCompatibilityError unless the model is opset 17 / IR 8 with only the default
    domain and no local functions (TensorRT 8.5 reads nothing newer)."""
    opset = default_opset(model)
    if opset != TARGET_OPSET:
        raise OnnxCompatibilityError(
            f"{source}: opset {opset}, but TensorRT 8.5 needs opset {TARGET_OPSET}; re-export with "
            "export.onnx (it pins opset 17) or run downgrade_to_opset17 on an opset-18 graph")
    if model.ir_version != TARGET_IR_VERSION:
        raise OnnxCompatibilityError(f"{source}: IR version {model.ir_version}, expected "
                                     f"{TARGET_IR_VERSION} (TensorRT 8.5 / onnx 1.12-era readers)")
    foreign = sorted(e.domain for e in model.opset_import if e.domain not in ("", "ai.onnx"))
    if foreign or model.functions:
        raise OnnxCompatibilityError(
            f"{source}: uses custom domains {foreign} or {len(model.functions)} local functions; "
            "TensorRT needs plain ONNX ops (run onnxslim to inline functions)")


def check_ops(model: onnx.ModelProto, allowed=None, source: str = "model") -> None:
    """Raise OnnxCompatibilityError naming every op outside ``allowed`` (default ALLOWED_OPS)."""
    allowed = ALLOWED_OPS if allowed is None else allowed
    counts = op_counts(model)
    foreign = {op: n for op, n in counts.items() if op not in allowed}
    if foreign:
        raise OnnxCompatibilityError(
            f"{source}: ops outside the TensorRT 8.5 whitelist: "
            + ", ".join(f"{op} x{n}" for op, n in foreign.items())
            + "; check them with trtexec on the device and extend export.onnx_passes.ALLOWED_OPS "
              "only with a reason")


def check_trt85_rules(model: onnx.ModelProto, source: str = "model") -> None:
    """Attribute rules of the TensorRT 8.5 importer that the op names alone do not cover."""
    initializers = {init.name for init in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type == "InstanceNormalization":
            # 8.5 maps it to the InstanceNormalization_TRT plugin, which needs constant weights
            if any(name not in initializers for name in node.input[1:3]):
                problems.append(f"InstanceNormalization '{node.name}': scale/bias are not initializers")
        elif node.op_type == "Pad":
            if len(node.input) > 3 and node.input[3]:
                problems.append(f"Pad '{node.name}': the opset-18 axes input (8.5 asserts on it)")
            if len(node.input) > 1 and node.input[1] not in initializers:
                problems.append(f"Pad '{node.name}': pads are not an initializer")
        elif node.op_type == "Resize":
            mode = node_attribute(node, "mode", b"nearest").decode()
            if mode not in _RESIZE_MODES:
                problems.append(f"Resize '{node.name}': mode {mode}")
    if problems:
        raise OnnxCompatibilityError(f"{source}: " + "; ".join(problems))


def check_deployable(model: onnx.ModelProto, reflect_pad: str = "keep", source: str = "model") -> None:
    """All checks an exported generator must pass (opset/IR, whitelist, 8.5 rules, onnx checker);
    with ``reflect_pad="slice"`` also that no reflect Pad is left."""
    check_opset_ir(model, source)
    check_ops(model, source=source)
    check_trt85_rules(model, source)
    if reflect_pad == "slice":
        left = [node.name for node in model.graph.node if is_reflect_pad(node)]
        if left:
            raise OnnxCompatibilityError(f"{source}: {len(left)} reflect Pads left: {left[:5]}")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise OnnxCompatibilityError(f"{source}: onnx checker: {error}") from None


# ----------------------------------------------------------------------------- dims and metadata

def io_shape(value: onnx.ValueInfoProto) -> List[Any]:
    """[1, 3, 256, 256] or ["batch", 3, "height", "width"]: ints for fixed dims, names otherwise."""
    return [dim.dim_param if dim.HasField("dim_param") else int(dim.dim_value)
            for dim in value.type.tensor_type.shape.dim]


def flat_metadata(meta: Dict[str, Any]) -> Dict[str, str]:
    """A few human-readable keys (shown by Netron / `polygraphy inspect model`)."""
    flat = {"arch": meta.get("arch"), "config": (meta.get("build") or {}).get("config"),
            "input_kind": meta.get("input_kind"), "palette": meta.get("palette")}
    if meta.get("resolution"):
        flat["resolution"] = "x".join(str(v) for v in meta["resolution"])
    for key in ("macs", "params"):
        if meta.get(key) is not None:
            flat[key] = f"{meta[key]:,}"
    return {k: str(v) for k, v in flat.items() if v is not None}


def set_metadata(model: onnx.ModelProto, meta: Dict[str, Any]) -> None:
    """Store ``meta`` as JSON under METADATA_KEY plus `flat_metadata` keys (replacing old ones)."""
    entries = {METADATA_KEY: json.dumps(meta, sort_keys=True)}
    entries.update(flat_metadata(meta))
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)

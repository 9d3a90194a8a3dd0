"""ONNX graph passes and checks that make an exported generator load on TensorRT 8.5, 10 and 11.

Everything here works on ``onnx.ModelProto`` alone (onnx + numpy, never torch), so the passes
can be unit-tested on hand-built graphs.

- `check_opset_ir`: the file must declare opset 17 and IR version 8, the newest pair that
  TensorRT 8.5 (JetPack 5.1, Xavier) parses; TRT 10 and 11 read it too.
- `downgrade_to_opset17`: turns an opset-18 graph (what the dynamo exporter leaves when a model
  has reflection padding) into an equivalent opset-17 one, refusing any op whose opset-18
  meaning cannot be expressed at 17.
- `rewrite_reflect_pads`: replaces every reflect ``Pad`` by an exactly equivalent
  ``Slice`` + ``Concat`` form (``--reflect-pad slice``), the fallback where a TensorRT version
  or DLA rejects reflect padding.
- `check_ops` / `check_trt85_rules`: the op whitelist (`ALLOWED_OPS`) and the few attribute
  rules of the 8.5 importer.
- `set_metadata`: the checkpoint metadata as JSON under ``engines.base.METADATA_KEY`` in
  ``metadata_props``; `engines.onnx_engine.read_onnx_metadata` reads it back (no torch).
"""
import json
from collections import Counter
from typing import Any, Dict, List, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from engines.base import METADATA_KEY

TARGET_OPSET = 17  # TensorRT 8.5 "supports operators up to Opset 17" (onnx-tensorrt 8.5-GA)
TARGET_IR_VERSION = 8  # the IR version that goes with opset 17 (onnx.helper.VERSION_TABLE)

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


class OnnxCompatibilityError(ValueError):
    """The graph uses an opset, op or attribute that the TensorRT targets do not accept."""


# ----------------------------------------------------------------------------- small helpers

def op_counts(model: onnx.ModelProto) -> Dict[str, int]:
    """{op_type: count} of the main graph, most frequent first."""
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


def _attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _constant_values(model: onnx.ModelProto) -> Dict[str, np.ndarray]:
    """Values of every initializer and Constant-node output, by tensor name."""
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            tensor = _attribute(node, "value")
            if isinstance(tensor, onnx.TensorProto):
                values[node.output[0]] = numpy_helper.to_array(tensor)
    return values


def _default_opset(model: onnx.ModelProto) -> Optional[int]:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


# ----------------------------------------------------------------------------- opset / IR

def check_opset_ir(model: onnx.ModelProto, source: str = "model") -> None:
    """Raise OnnxCompatibilityError unless the model is opset 17 / IR 8 with only the default
    domain and no local functions (TensorRT 8.5 reads nothing newer)."""
    opset = _default_opset(model)
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


def downgrade_to_opset17(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return an opset-17 / IR-8 copy of an opset-18 ``model`` with the same outputs.

    Only ops whose opset-18 form has an exact opset-17 equivalent are accepted: ``Pad`` without
    the new ``axes`` input (then identical to Pad-13) and ``Resize`` whose new attributes keep
    their defaults (dropped; then identical to Resize-13). Any other op that changed in opset 18
    (Reduce* with axes as input, Split with num_outputs, GroupNormalization, ...) raises
    OnnxCompatibilityError naming it. Models already at 17 are returned unchanged (copied).
    """
    opset = _default_opset(model)
    result = onnx.ModelProto()
    result.CopyFrom(model)
    if opset == TARGET_OPSET:
        result.ir_version = min(result.ir_version, TARGET_IR_VERSION)
        return result
    if opset != 18:
        raise OnnxCompatibilityError(f"downgrade_to_opset17 converts opset 18 only, got {opset}; "
                                     "export at opset 18 (dynamo) or 17 (legacy)")
    refused = []
    for node in result.graph.node:
        if node.domain not in ("", "ai.onnx"):
            refused.append(f"{node.op_type} (domain {node.domain})")
            continue
        try:
            since = onnx.defs.get_schema(node.op_type, 18).since_version
        except onnx.defs.SchemaError:
            refused.append(f"{node.op_type} (unknown op)")
            continue
        if since <= TARGET_OPSET:
            continue  # unchanged between 17 and 18
        if node.op_type == "Pad" and (len(node.input) < 4 or not node.input[3]):
            continue  # Pad-18 without axes == Pad-13
        if node.op_type == "Resize" and _strip_resize18_defaults(node):
            continue
        refused.append(f"{node.op_type} '{node.name}' (changed in opset 18)")
    if refused:
        raise OnnxCompatibilityError("cannot express these opset-18 ops at opset 17: "
                                     + ", ".join(sorted(set(refused))))
    if result.functions:
        raise OnnxCompatibilityError(f"{len(result.functions)} local functions; inline them first "
                                     "(onnxslim) before downgrading")
    for entry in result.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = TARGET_OPSET
    result.ir_version = TARGET_IR_VERSION
    return result


def _strip_resize18_defaults(node: onnx.NodeProto) -> bool:
    """Drop Resize-18's new attributes when they hold their defaults; False if one does not."""
    defaults = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}
    keep = []
    for attr in node.attribute:
        if attr.name == "axes":
            return False
        if attr.name in defaults:
            value = helper.get_attribute_value(attr)
            if value != defaults[attr.name]:
                return False
            continue
        keep.append(attr)
    del node.attribute[:]
    node.attribute.extend(keep)
    return True


# ----------------------------------------------------------------------------- reflect pads

def is_reflect_pad(node: onnx.NodeProto) -> bool:
    mode = _attribute(node, "mode", b"constant")
    return node.op_type == "Pad" and (mode.decode() if isinstance(mode, bytes) else mode) == "reflect"


def rewrite_reflect_pads(model: onnx.ModelProto) -> int:
    """Replace every reflect ``Pad`` in ``model`` (in place) by ``Slice`` + ``Concat``.

    Reflecting ``p`` rows at the start of an axis prepends rows ``p, p-1, ..., 1``; reflecting
    ``q`` rows at the end appends rows ``n-2, ..., n-1-q``. Each row is a unit-step ``Slice``
    (start/end counted from the end of the axis for the trailing rows, so it works for
    dynamic H/W), and one ``Concat`` per axis joins them around the input: plain slicing that
    every TensorRT version and DLA handle, with the exact values of the reflect Pad (it needs
    the same ``p, q < n``). Pads must be constants (run onnxslim first to fold the pad
    plumbing of dynamic exports). Returns the number of Pads rewritten.
    """
    graph = model.graph
    constants = _constant_values(model)
    new_nodes: List[onnx.NodeProto] = []
    new_inits: Dict[str, onnx.TensorProto] = {}
    existing = {init.name for init in graph.initializer}

    def const(value: int) -> str:
        name = f"reflect_pad/int64_{value}".replace("-", "m")
        if name not in new_inits and name not in existing:
            new_inits[name] = numpy_helper.from_array(np.array([value], dtype=np.int64), name)
        return name

    rewritten = 0
    for node in graph.node:
        if not is_reflect_pad(node):
            new_nodes.append(node)
            continue
        pads = constants.get(node.input[1]) if len(node.input) > 1 else None
        if pads is None:
            raise OnnxCompatibilityError(f"Pad '{node.name}': pads are computed at run time; "
                                         "fold them first (onnxslim) to rewrite reflect padding")
        pads = [int(v) for v in np.asarray(pads).reshape(-1)]
        rank = len(pads) // 2
        axes = list(range(rank))
        if len(node.input) > 3 and node.input[3]:
            axes_value = constants.get(node.input[3])
            if axes_value is None:
                raise OnnxCompatibilityError(f"Pad '{node.name}': axes are not constant")
            axes = [int(a) for a in np.asarray(axes_value).reshape(-1)]
        if any(v < 0 for v in pads):
            raise OnnxCompatibilityError(f"Pad '{node.name}': negative pads (cropping) {pads}")
        current = node.input[0]
        prefix = node.name or node.output[0]
        padded_axes = [(axis, pads[i], pads[i + rank]) for i, axis in enumerate(axes)
                       if pads[i] or pads[i + rank]]
        for step, (axis, before, after) in enumerate(padded_axes):
            pieces = []
            # leading rows p, p-1, ..., 1 then the input then trailing rows n-2, ..., n-1-q
            rows = [(index, index + 1) for index in range(before, 0, -1)]
            rows += [(-(2 + k), -(1 + k)) for k in range(after)]
            for start, end in rows:
                piece = f"{prefix}/reflect_axis{axis}_row{start}".replace("-", "m")
                new_nodes.append(helper.make_node(
                    "Slice", [current, const(start), const(end), const(axis)], [piece],
                    name=piece))
                pieces.append(piece)
            leading, trailing = pieces[:before], pieces[before:]
            last = step == len(padded_axes) - 1
            joined = node.output[0] if last else f"{prefix}/reflect_axis{axis}"
            new_nodes.append(helper.make_node("Concat", leading + [current] + trailing, [joined],
                                              name=f"{prefix}/reflect_concat{axis}", axis=axis))
            current = joined
        if not padded_axes:  # a zero pad: keep the graph connected
            new_nodes.append(helper.make_node("Identity", [current], [node.output[0]], name=prefix))
        rewritten += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits.values())
    return rewritten


# ----------------------------------------------------------------------------- whitelist

def rewrite_output_conv_s2d(model: onnx.ModelProto, max_out_channels: int = 4) -> int:
    """Compute each narrow stride-1 conv (at most ``max_out_channels`` outputs, e.g. the
    generators' 7x7 RGB output conv) as a stride-2 conv with 4x the output channels followed by
    ``DepthToSpace`` (in place); returns how many convs were rewritten.

    Output pixel (2i+a, 2j+b) of a k x k conv reads input rows 2i+a..2i+a+k-1: one (k+1) x (k+1)
    stride-2 kernel per phase (a, b), holding the original kernel shifted by (a, b) and zeros
    elsewhere, gives all four phases; DepthToSpace (CRD) interleaves them back. The sums are the
    same products (up to float rounding order). Why: CPU kernels (ONNX Runtime's NCHWc layout)
    pad output channels to a block of 8-16, so a 3-channel conv at full resolution runs 5x its
    real work; 12 channels at a quarter of the positions waste far less. Needs even output
    height and width (true for every ResNet generator: sizes are multiples of 4).
    """
    initializers = {init.name: init for init in model.graph.initializer}
    rewritten = 0
    new_nodes: List[onnx.NodeProto] = []
    for node in model.graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 4:
            new_nodes.append(node)
            continue
        out_channels, in_channels, kh, kw = weight.dims
        plain = (_attribute(node, "group", 1) == 1 and list(_attribute(node, "strides", [1, 1])) == [1, 1]
                 and list(_attribute(node, "dilations", [1, 1])) == [1, 1]
                 and not any(_attribute(node, "pads", [0, 0, 0, 0]))
                 and _attribute(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
        if not plain or out_channels > max_out_channels or kh < 2 or kw < 2:
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(weight)
        phased = np.zeros((out_channels * 4, in_channels, kh + 1, kw + 1), dtype=w.dtype)
        for a in (0, 1):
            for b in (0, 1):
                phased[a * 2 + b::4, :, a:a + kh, b:b + kw] = w  # channel o*4 + a*2 + b (CRD order)
        names = [f"{node.name or node.output[0]}_s2d_{part}" for part in ("weight", "bias", "phases")]
        model.graph.initializer.append(numpy_helper.from_array(phased, names[0]))
        inputs = [node.input[0], names[0]]
        if len(node.input) > 2 and node.input[2] in initializers:
            bias = numpy_helper.to_array(initializers[node.input[2]])
            model.graph.initializer.append(numpy_helper.from_array(np.repeat(bias, 4), names[1]))
            inputs.append(names[1])
        new_nodes.append(helper.make_node("Conv", inputs, [names[2]], name=names[2] + "_conv",
                                          kernel_shape=[kh + 1, kw + 1], strides=[2, 2]))
        new_nodes.append(helper.make_node("DepthToSpace", [names[2]], list(node.output),
                                          name=names[2] + "_d2s", blocksize=2, mode="CRD"))
        rewritten += 1
    if rewritten:
        _replace_nodes(model, new_nodes)
    return rewritten


def _replace_nodes(model: onnx.ModelProto, nodes: List[onnx.NodeProto]) -> None:
    """Install ``nodes`` as the graph's nodes and drop initializers nothing reads any more."""
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


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
            mode = _attribute(node, "mode", b"nearest").decode()
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

def rename_dims(model: onnx.ModelProto, names: Dict[str, str]) -> None:
    """Rename symbolic dims (``dim_param``) everywhere in the graph's value infos, in place."""
    graph = model.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


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

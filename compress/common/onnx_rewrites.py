"""The ONNX graph rewrites that turn an exporter's output into the graph this project ships.

`compress.models.onnx_graph.deployable_graph` runs them on every generator it exports; both the
exporter (``export.onnx``) and the compression search's latency measurer use that function,
so the search times exactly the graph that ships. They live here, torch-free and engine-free,
because compress/ may not import export/ and ``export.onnx_passes`` (which re-exports them with
its deployability checks) must stay importable without torch. Everything works on
``onnx.ModelProto`` alone (onnx + numpy), so the passes can be unit-tested on hand-built graphs.

- `downgrade_to_opset17`: turns an opset-18 graph (what the dynamo exporter leaves when a model
  has reflection padding) into an equivalent opset-17 one, refusing any op whose opset-18
  meaning cannot be expressed at 17.
- `rewrite_reflect_pads`: replaces every reflect ``Pad`` by an exactly equivalent
  ``Slice`` + ``Concat`` form (``--reflect-pad slice``), the fallback where a TensorRT version
  or DLA rejects reflect padding.
- `rewrite_output_conv_s2d`: the narrow full-resolution output conv as a stride-2 conv +
  ``DepthToSpace`` (``--output-conv s2d``; same function, faster on CPU runtimes).
- `rename_dims`: names symbolic dims (the dynamo exporter's ``4*h`` -> ``height``).
"""
from typing import Any, Dict, List, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

TARGET_OPSET = 17  # TensorRT 8.5 "supports operators up to Opset 17" (onnx-tensorrt 8.5-GA)
TARGET_IR_VERSION = 8  # the IR version that goes with opset 17 (onnx.helper.VERSION_TABLE)


class OnnxCompatibilityError(ValueError):
    """The graph uses an opset, op or attribute that the TensorRT targets do not accept."""


# ----------------------------------------------------------------------------- small helpers

def node_attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The value of attribute ``name`` of ``node``, or ``default`` when it has none."""
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _constant_values(model: onnx.ModelProto) -> Dict[str, np.ndarray]:
    """Values of every initializer and Constant-node output, by tensor name."""
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            tensor = node_attribute(node, "value")
            if isinstance(tensor, onnx.TensorProto):
                values[node.output[0]] = numpy_helper.to_array(tensor)
    return values


def default_opset(model: onnx.ModelProto) -> Optional[int]:
    """The opset of the default (ai.onnx) domain; None when the model imports none."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


# ----------------------------------------------------------------------------- opset 18 -> 17

def downgrade_to_opset17(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return an opset-17 / IR-8 copy of an opset-18 ``model`` with the same outputs.

    Only ops whose opset-18 form has an exact opset-17 equivalent are accepted: ``Pad`` without
    the new ``axes`` input (then identical to Pad-13) and ``Resize`` whose new attributes keep
    their defaults (dropped; then identical to Resize-13). Any other op that changed in opset 18
    (Reduce* with axes as input, Split with num_outputs, GroupNormalization, ...) raises
    OnnxCompatibilityError naming it. Models already at 17 are returned unchanged (copied).
    """
    opset = default_opset(model)
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
    mode = node_attribute(node, "mode", b"constant")
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


# ----------------------------------------------------------------------------- output conv

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
        plain = (node_attribute(node, "group", 1) == 1
                 and list(node_attribute(node, "strides", [1, 1])) == [1, 1]
                 and list(node_attribute(node, "dilations", [1, 1])) == [1, 1]
                 and not any(node_attribute(node, "pads", [0, 0, 0, 0]))
                 and node_attribute(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
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


# ----------------------------------------------------------------------------- dims

def rename_dims(model: onnx.ModelProto, names: Dict[str, str]) -> None:
    """Rename symbolic dims (``dim_param``) everywhere in the graph's value infos, in place."""
    graph = model.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]

"""ONNX graph passes on hand-built graphs (no torch): reflect-pad rewrite, opset downgrade,
opset/IR and whitelist checks, metadata round trip (read back by engines.onnx_engine), and that
the module stays torch-free."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engines.base import METADATA_KEY
from engines.onnx_engine import read_onnx_metadata
from export.onnx_passes import (OnnxCompatibilityError, check_deployable, check_ops,
                                check_opset_ir, check_trt85_rules, downgrade_to_opset17,
                                is_reflect_pad, rewrite_reflect_pads, set_metadata)
from tests.conftest import run_python


def _model(nodes, initializers=(), opset=17, ir_version=8, channels=2):
    """A graph from input 'x' to output 'y', both [N, C, H, W] with dynamic N/H/W."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", channels, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", channels, "out_h", "out_w"])],
        initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=ir_version)


def _ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _reflect_pad_model(pads, opset=17):
    return _model([helper.make_node("Pad", ["x", "pads"], ["y"], name="pad", mode="reflect")],
                  [_ints("pads", pads)], opset=opset)


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _copy(model):
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


# ----------------------------------------------------------------------------- reflect pads

@pytest.mark.parametrize("pads", [
    [0, 0, 1, 1, 0, 0, 1, 1],   # the residual blocks' ReflectionPad2d(1)
    [0, 0, 3, 3, 0, 0, 3, 3],   # stem / output ReflectionPad2d(3)
    [0, 0, 2, 0, 0, 0, 1, 3],   # asymmetric, one side zero
])
def test_reflect_pad_rewrite_is_exact_at_several_shapes(pads):
    original = _reflect_pad_model(pads)
    rewritten = _copy(original)
    assert rewrite_reflect_pads(rewritten) == 1
    ops = [node.op_type for node in rewritten.graph.node]
    assert "Pad" not in ops and set(ops) == {"Slice", "Concat"}
    assert ops.count("Slice") == sum(pads)  # one unit-step slice per reflected row
    check_deployable(rewritten, reflect_pad="slice")
    rng = np.random.default_rng(0)
    for shape in [(1, 2, 8, 8), (2, 2, 5, 11)]:  # dynamic N/H/W: one graph, several shapes
        x = rng.standard_normal(shape).astype(np.float32)
        expected = np.pad(x, [(pads[i], pads[i + 4]) for i in range(4)], mode="reflect")
        np.testing.assert_array_equal(_run(original, x), expected)
        np.testing.assert_array_equal(_run(rewritten, x), expected)


def test_reflect_pad_rewrite_keeps_other_pads_and_refuses_runtime_pads():
    constant = _model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant")],
                      [_ints("pads", [0, 0, 1, 1, 0, 0, 1, 1])])
    assert rewrite_reflect_pads(constant) == 0
    assert [n.op_type for n in constant.graph.node] == ["Pad"]

    runtime = _model([helper.make_node("Shape", ["x"], ["s"]),
                      helper.make_node("Concat", ["s", "s"], ["pads"], axis=0),
                      helper.make_node("Pad", ["x", "pads"], ["y"], name="p", mode="reflect")])
    with pytest.raises(OnnxCompatibilityError, match="computed at run time.*onnxslim"):
        rewrite_reflect_pads(runtime)


def test_slice_mode_check_fails_while_a_reflect_pad_remains():
    model = _reflect_pad_model([0, 0, 1, 1, 0, 0, 1, 1])
    check_deployable(model, reflect_pad="keep")
    with pytest.raises(OnnxCompatibilityError, match="1 reflect Pads left"):
        check_deployable(model, reflect_pad="slice")
    assert is_reflect_pad(model.graph.node[0])


# ----------------------------------------------------------------------------- opset / IR

def test_opset_and_ir_are_asserted():
    check_opset_ir(_reflect_pad_model([0, 0, 1, 1, 0, 0, 1, 1]))
    with pytest.raises(OnnxCompatibilityError, match="opset 18.*needs opset 17"):
        check_opset_ir(_reflect_pad_model([0, 0, 1, 1, 0, 0, 1, 1], opset=18))
    with pytest.raises(OnnxCompatibilityError, match="IR version 10"):
        check_opset_ir(_model([helper.make_node("Relu", ["x"], ["y"])], ir_version=10))


def _opset18_generator_like():
    """Reflect Pad (2 inputs) -> Relu -> Resize-18 with its new attributes at their defaults,
    as the dynamo exporter writes them."""
    nodes = [helper.make_node("Pad", ["x", "pads"], ["padded"], mode="reflect"),
             helper.make_node("Relu", ["padded"], ["r"]),
             helper.make_node("Resize", ["r", "", "scales"], ["y"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor",
                              antialias=0, keep_aspect_ratio_policy="stretch")]
    inits = [_ints("pads", [0, 0, 1, 1, 0, 0, 1, 1]),
             numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")]
    return _model(nodes, inits, opset=18, ir_version=10)


def test_downgrade_from_opset18_is_exact_and_checked():
    original = _opset18_generator_like()
    downgraded = downgrade_to_opset17(original)
    assert downgraded.opset_import[0].version == 17 and downgraded.ir_version == 8
    assert original.opset_import[0].version == 18  # the input is left untouched
    resize = downgraded.graph.node[2]
    assert {a.name for a in resize.attribute} == {"mode", "coordinate_transformation_mode",
                                                  "nearest_mode"}
    check_deployable(downgraded)  # includes onnx.checker full_check
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 10)).astype(np.float32)
    np.testing.assert_array_equal(_run(downgraded, x), _run(original, x))


@pytest.mark.parametrize("change, message", [
    ("pad_axes", "Pad"),
    ("antialias", "Resize"),
    ("reduce", "ReduceMean"),
])
def test_downgrade_refuses_what_opset17_cannot_express(change, message):
    model = _opset18_generator_like()
    if change == "pad_axes":
        model.graph.node[0].input.extend(["", "axes"])
        model.graph.initializer.append(_ints("axes", [2, 3]))
        model.graph.initializer[0].CopyFrom(_ints("pads", [1, 1, 1, 1]))
    elif change == "antialias":
        for attr in model.graph.node[2].attribute:
            if attr.name == "antialias":
                attr.i = 1
    else:
        model.graph.node.append(helper.make_node("ReduceMean", ["y", "axes"], ["z"]))
        model.graph.initializer.append(_ints("axes", [1]))
    with pytest.raises(OnnxCompatibilityError, match=f"cannot express.*{message}"):
        downgrade_to_opset17(model)


# ----------------------------------------------------------------------------- whitelist, rules

def test_whitelist_names_foreign_ops():
    model = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Erf", ["a"], ["b"]),
                    helper.make_node("Erf", ["b"], ["y"])])
    with pytest.raises(OnnxCompatibilityError, match="Erf x2"):
        check_ops(model)
    check_ops(model, allowed={"Relu", "Erf"})


def test_instance_norm_weights_must_be_initializers_for_trt85():
    nodes = [helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], name="in")]
    inits = [numpy_helper.from_array(np.ones(2, np.float32), n) for n in ("scale", "bias")]
    check_trt85_rules(_model(nodes, inits))
    computed = _model([helper.make_node("Constant", [], ["scale"], value=inits[0]),
                       helper.make_node("Constant", [], ["bias"], value=inits[1])] + nodes)
    with pytest.raises(OnnxCompatibilityError, match="'in': scale/bias are not initializers"):
        check_trt85_rules(computed)


# ----------------------------------------------------------------------------- metadata

def test_metadata_round_trip_and_clear_errors(tmp_path):
    model = _reflect_pad_model([0, 0, 1, 1, 0, 0, 1, 1])
    meta = {"arch": "sub_mobile_resnet_9blocks", "build": {"config": "16_16_32_16_32_32_16_16"},
            "resolution": [256, 256], "macs": 2546204672, "params": 356867, "palette": None}
    set_metadata(model, meta)
    set_metadata(model, meta)  # replaces, never duplicates
    props = {p.key: p.value for p in model.metadata_props}
    assert len(model.metadata_props) == len(props)
    assert json.loads(props[METADATA_KEY]) == meta
    assert props["resolution"] == "256x256" and props["macs"] == "2,546,204,672"
    assert props["config"] == "16_16_32_16_32_32_16_16" and "palette" not in props
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_onnx_metadata(str(path), required=True) == meta

    bare = tmp_path / "bare.onnx"
    onnx.save(_reflect_pad_model([0, 0, 1, 1, 0, 0, 1, 1]), str(bare))
    with pytest.raises(ValueError, match="bare.onnx: no 'gan_compression' metadata"):
        read_onnx_metadata(str(bare), required=True)
    assert read_onnx_metadata(str(bare)) == {}  # the engines run foreign files without it
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf at all" * 10)
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX file"):
        read_onnx_metadata(str(junk), required=True)
    with pytest.raises(FileNotFoundError, match="missing.onnx: no such ONNX file"):
        read_onnx_metadata(str(tmp_path / "missing.onnx"), required=True)


def test_passes_module_never_imports_torch(tmp_path):
    path = tmp_path / "m.onnx"
    model = _reflect_pad_model([0, 0, 1, 1, 0, 0, 1, 1])
    set_metadata(model, {"arch": "resnet_9blocks"})
    onnx.save(model, str(path))
    code = ("import sys; import export.onnx_passes; "
            "from engines.onnx_engine import read_onnx_metadata; "
            f"assert read_onnx_metadata({str(path)!r}, required=True)['arch'] == 'resnet_9blocks'; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def _conv_model(out_channels, kernel, pads=(0, 0, 0, 0), dynamic=False):
    rng = np.random.RandomState(0)
    weight = rng.randn(out_channels, 5, kernel, kernel).astype(np.float32)
    bias = rng.randn(out_channels).astype(np.float32)
    dims = [1, 5, "h", "w"] if dynamic else [1, 5, 22, 30]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[kernel, kernel], pads=list(pads))],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, "oh", "ow"])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("kernel", [7, 3])
def test_output_conv_s2d_rewrite_is_the_same_function(kernel):
    from export.onnx_passes import rewrite_output_conv_s2d
    model = _conv_model(3, kernel, dynamic=True)
    rng = np.random.RandomState(1)
    inputs = [rng.randn(1, 5, 16 + kernel - 1, 24 + kernel - 1).astype(np.float32),
              rng.randn(1, 5, 8 + kernel - 1, 12 + kernel - 1).astype(np.float32)]
    expected = [_run(model, x) for x in inputs]
    assert rewrite_output_conv_s2d(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Conv", "DepthToSpace"]
    assert {i.name for i in model.graph.initializer} == {"y_s2d_weight", "y_s2d_bias"}
    onnx.checker.check_model(model, full_check=True)
    for x, want in zip(inputs, expected):
        got = _run(model, x)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4


def test_output_conv_s2d_leaves_wide_or_padded_convs_alone():
    from export.onnx_passes import rewrite_output_conv_s2d
    assert rewrite_output_conv_s2d(_conv_model(16, 7)) == 0           # wide: no channel padding waste
    assert rewrite_output_conv_s2d(_conv_model(3, 3, pads=(1, 1, 1, 1))) == 0  # SPADE's padded conv_img

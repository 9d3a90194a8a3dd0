"""The fake TensorRT must be strict, or the CPU suite proves nothing: every API removed in 10
or 11 (or missing in 8.5) that the project could reach for fails here as it would on a device."""
import pytest

from engines.tensorrt_engine import trt_logger
from export.trt_build import build_serialized_engine, precision_plan, read_onnx_info, resolve_profile
from tests.fakes.fake_tensorrt import make_fake_tensorrt
from tests.fakes.tiny_onnx import tiny_onnx


@pytest.fixture(scope="module")
def onnx_path():
    return tiny_onnx("label", palette="facades")


def _engine_and_context(trt, onnx_path):
    plan = precision_plan(trt.__version__, "fp32")
    shapes, dynamic = resolve_profile(read_onnx_info(onnx_path))
    data = build_serialized_engine(trt, onnx_path, plan, shapes, dynamic)
    engine = trt.Runtime(trt_logger(trt)).deserialize_cuda_engine(data)
    return engine, engine.create_execution_context()


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0", "11.4.0"])
def test_bindings_api_and_implicit_batch_leftovers_are_absent(version, onnx_path):
    trt = make_fake_tensorrt(version)
    engine, context = _engine_and_context(trt, onnx_path)
    assert hasattr(context, "execute_v2")  # still in 8.5, 10 and 11: not stricter than reality
    for obj, name in ((context, "execute_async_v2"),
                      (context, "set_binding_shape"), (engine, "get_binding_index"),
                      (engine, "num_bindings"), (engine, "max_batch_size"),
                      (engine, "get_binding_shape"), (trt.Builder(trt_logger(trt)), "build_engine"),
                      (trt.Builder(trt_logger(trt)), "platform_has_fast_fp16")):
        with pytest.raises(AttributeError):
            getattr(obj, name)
    config = trt.Builder(trt_logger(trt)).create_builder_config()
    with pytest.raises(AttributeError, match="max_workspace_size"):
        config.max_workspace_size = 1 << 30
    assert engine.num_io_tensors == 2 and engine.get_tensor_name(0) == "input"
    assert engine.get_tensor_mode("output") == trt.TensorIOMode.OUTPUT


def test_tensorrt_11_has_no_weak_typing_or_calibration():
    trt = make_fake_tensorrt("11.4.0")
    for name in ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"):
        assert not hasattr(trt.BuilderFlag, name)
    assert not hasattr(trt, "IInt8EntropyCalibrator2")
    assert not hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH")
    config = trt.Builder(trt_logger(trt)).create_builder_config()
    with pytest.raises(AttributeError, match="int8_calibrator"):
        config.int8_calibrator = object()
    assert not hasattr(config, "set_calibration_profile")
    assert trt.BuilderFlag.GPU_FALLBACK  # kept


def test_tensorrt_85_needs_explicit_batch_and_registers_its_plugins_itself(onnx_path):
    trt = make_fake_tensorrt("8.5.2.2")
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    with pytest.raises(AssertionError, match="EXPLICIT_BATCH"):
        trt.OnnxParser(builder.create_network(0), logger).parse_from_file(onnx_path)
    explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    # InstanceNormalization becomes the InstanceNormalization_TRT plugin, which the 8.5 parser
    # registers itself: no init_libnvinfer_plugins call is needed (the project still makes one)
    assert trt.OnnxParser(builder.create_network(explicit), logger).parse_from_file(onnx_path)
    assert not trt._fake.plugins_initialised
    assert not hasattr(trt.LayerType, "NORMALIZATION")  # 8.6+


def test_tensorrt_85_importer_rejects_unknown_ops_and_non_constant_weights(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    trt = make_fake_tensorrt("8.5.2.2")
    logger = trt_logger(trt)
    explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)

    def parse(nodes, inputs, initializers=()):
        graph = helper.make_graph(nodes, "g", inputs,
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
                                  list(initializers))
        path = tmp_path / "m.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        parser = trt.OnnxParser(trt.Builder(logger).create_network(explicit), logger)
        return parser.parse_from_file(str(path)), [str(parser.get_error(i)) for i in range(parser.num_errors)]

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    ok, errors = parse([helper.make_node("LayerNormalization", ["x", "s"], ["y"])], [x],
                       [helper.make_tensor("s", TensorProto.FLOAT, [4], [1.0] * 4)])
    assert not ok and errors == ["No importer registered for op: LayerNormalization"]  # 8.6+
    scale = helper.make_tensor_value_info("scale", TensorProto.FLOAT, [3])  # a graph input, not weights
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [3], [0.0] * 3)
    ok, errors = parse([helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"])],
                       [x, scale], [bias])
    assert not ok and "input 1 must be an initializer" in errors[0]


def test_runtime_checks_catch_runner_mistakes(onnx_path):
    trt = make_fake_tensorrt("10.3.0")
    engine, context = _engine_and_context(trt, onnx_path)
    with pytest.raises(AssertionError, match="before set_tensor_address"):
        context.execute_async_v3(1)
    with pytest.raises(AssertionError, match="no I/O tensor"):
        engine.get_tensor_shape("x")
    with pytest.raises(AssertionError, match="bad address"):
        context.set_tensor_address("input", 0)
    with pytest.raises(AssertionError, match="not 256-byte aligned"):
        context.set_tensor_address("input", 12345)  # TensorRT requires 256-byte aligned I/O
    context.set_tensor_address("input", 256 * 48)
    context.set_tensor_address("output", 256 * 265)
    with pytest.raises(AssertionError, match="not inside a device allocation"):
        context.execute_async_v3(1)  # host or bogus pointers are not device memory


def test_one_logger_per_process_as_tensorrt_keeps_it():
    """TensorRT ignores every logger after the first (and a Runtime keeps only its own alive):
    the stand-in refuses a second logger object, the project shares one and sets its level."""
    trt = make_fake_tensorrt("8.5.2.2")
    shared = trt_logger(trt)
    trt.Runtime(shared)
    with pytest.raises(AssertionError, match="single logger per process"):
        trt.Builder(trt.Logger(trt.Logger.VERBOSE))
    assert trt_logger(trt, "VERBOSE") is shared and shared.min_severity == trt.Logger.VERBOSE
    trt.Builder(trt_logger(trt))  # the same object: accepted


def test_a_truncated_engine_deserialises_to_none_as_tensorrt_does(onnx_path):
    trt = make_fake_tensorrt("8.5.2.2")
    plan = precision_plan(trt.__version__, "fp32")
    shapes, dynamic = resolve_profile(read_onnx_info(onnx_path))
    data = build_serialized_engine(trt, onnx_path, plan, shapes, dynamic)
    runtime = trt.Runtime(trt_logger(trt))
    assert runtime.deserialize_cuda_engine(data) is not None
    for cut in (10, 40, len(data) // 2):
        assert runtime.deserialize_cuda_engine(data[:cut]) is None

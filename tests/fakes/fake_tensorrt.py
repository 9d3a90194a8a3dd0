"""A strict stand-in for the ``tensorrt`` module, emulating 8.5, 10 or 11 on the CPU.

It exposes only the API that TensorRT 8.5, 10 and 11 share and that the project uses, so code
that reaches for a removed or version-specific API fails the suite:

- everywhere: ``__version__``, ``Logger``, ``init_libnvinfer_plugins``, ``Builder``
  (``create_network``, ``create_builder_config``, ``create_optimization_profile``,
  ``build_serialized_network``, ``num_DLA_cores``), ``OnnxParser`` (``parse``,
  ``parse_from_file``, ``num_errors``, ``get_error``), ``IBuilderConfig``
  (``set_memory_pool_limit``, ``set_flag``/``get_flag``/``clear_flag``, ``default_device_type``,
  ``DLA_core``, ``add_optimization_profile``, timing-cache calls), ``Runtime``
  (``deserialize_cuda_engine``, ``DLA_core``), the engine's and context's name-based I/O API,
  ``execute_async_v3``, and the enums ``NetworkDefinitionCreationFlag``, ``BuilderFlag``,
  ``MemoryPoolType``, ``DeviceType``, ``TensorIOMode``, ``DataType`` (+ ``float32``...),
  ``LayerType``, and ``nptype``.
- < 11 only: ``BuilderFlag.FP16/INT8/OBEY_/PREFER_PRECISION_CONSTRAINTS``,
  ``IInt8EntropyCalibrator2``, ``IBuilderConfig.int8_calibrator``/``set_calibration_profile``.
- < 10 only: ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` is *required* (the 8.5 parser
  asserts), and the parser needs ``init_libnvinfer_plugins`` for InstanceNormalization (a plugin
  there), rejects opset > 17 and Pad with an ``axes`` input. 10 keeps EXPLICIT_BATCH (ignored);
  11 drops it. ``LayerType.NORMALIZATION`` exists from 8.6; ``execute_v2`` everywhere (unused).

Absent everywhere, so ``AttributeError``: ``execute_async_v2``, ``get_binding_*``,
``num_bindings``, ``max_batch_size``, ``max_workspace_size`` (writing an unknown attribute on
any fake object raises too), ``build_engine``, ``platform_has_fast_fp16``.

The "engine" it serializes holds the ONNX model and runs it with ONNX Runtime on tensors read
from and written to fake device memory (tests.fakes.fake_cuda), so a runner's whole path
(shapes, addresses, execute, copy back) is exercised; ``execute_async_v3`` only queues the run on
the fake stream, which does it when synchronised (after the uploads queued before it, before the
downloads queued after it). FP16/INT8 engines round their outputs so precision differences are
visible. Engines carry the version and GPU they were built for and do not deserialise elsewhere
(None, or an exception with ``raise_on_bad_engine``).
"""
import enum
import json
import struct
import sys
import types
from typing import Any, Dict, List

import numpy as np

from tests.fakes import fake_cuda
from tests.fakes.fake_cuda import MEMORY, FakeDeviceBuffers, fake_polygraphy_cuda

VERSIONS = ("8.5.2.2", "10.3.0", "11.4.0")
FAKE_GPU = "FakeGPU (sm_00)"
MAGIC = b"FAKETRT1"
LAYER_OF_OP = {"Conv": "CONVOLUTION", "ConvTranspose": "DECONVOLUTION", "Relu": "ACTIVATION",
               "Tanh": "ACTIVATION", "LeakyRelu": "ACTIVATION", "Sigmoid": "ACTIVATION",
               "Clip": "ACTIVATION", "Add": "ELEMENTWISE", "Mul": "ELEMENTWISE", "Sub": "ELEMENTWISE",
               "Div": "ELEMENTWISE", "Pad": "SLICE", "Resize": "RESIZE", "Concat": "CONCATENATION",
               "Shape": "SHAPE", "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Constant": "CONSTANT",
               "Cast": "IDENTITY", "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE"}
_NPTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_}


class FakeState:
    """Knobs and counters of one fake module (``tensorrt._fake``)."""

    def __init__(self, version: str, gpu: str, num_dla_cores: int):
        self.version, self.major, self.gpu = version, int(version.split(".")[0]), gpu
        self.minor_version = tuple(int(v) for v in version.split(".")[:2])  # (8, 5), (10, 3), ...
        self.num_dla_cores = num_dla_cores
        self.raise_on_bad_engine = False  # deserialize raises instead of returning None
        self.plugins_initialised = False
        self.builds = self.executions = self.calibration_batches = 0
        self.last_build: Dict[str, Any] = {}
        self.pinned: List[str] = []
        self.logger: Any = None  # the process's one logger (TensorRT ignores later ones)

    def register_logger(self, logger) -> None:
        """TensorRT keeps one logger pointer per process and ignores any other; each Runtime
        keeps only its own logger alive, so a second logger object is a latent dangling pointer."""
        assert isinstance(logger, Logger), "expected a trt.Logger"
        if self.logger is None:
            self.logger = logger
        assert logger is self.logger, ("TensorRT keeps a single logger per process: this second "
                                       "trt.Logger is ignored (share one logger)")


class _Strict:
    """Only names in ``_SETTABLE`` may be written; reading a missing API raises AttributeError."""

    _SETTABLE = ()

    def __setattr__(self, name, value):
        if not name.startswith("_") and name not in self._SETTABLE:
            raise AttributeError(f"fake TensorRT {self._mod.__version__}: {type(self).__name__} has "
                                 f"no writable attribute {name!r}")
        object.__setattr__(self, name, value)


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = 2):
        self.min_severity = min_severity


class _ParserError:
    def __init__(self, text):
        self._text = text

    def desc(self):
        return self._text

    def __str__(self):
        return self._text


class _Tensor(_Strict):
    def __init__(self, name, shape, dtype, is_output):
        self._name, self._shape, self._dtype, self._out = name, tuple(shape), dtype, is_output

    name = property(lambda self: self._name)
    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)
    is_network_output = property(lambda self: self._out)


class _Layer(_Strict):
    _SETTABLE = ("precision",)

    def __init__(self, name, layer_type, outputs):
        self._name, self._type, self._outputs, self._out_types = name, layer_type, outputs, {}
        object.__setattr__(self, "precision", self._mod.DataType.FLOAT)

    name = property(lambda self: self._name)
    type = property(lambda self: self._type)
    num_outputs = property(lambda self: len(self._outputs))

    def get_output(self, index):
        return self._outputs[index]

    def set_output_type(self, index, dtype):
        assert 0 <= index < len(self._outputs)
        self._out_types[index] = dtype

    def __setattr__(self, name, value):
        if name == "precision":
            assert self._mod._fake.major < 11, "fake TensorRT 11: networks are strongly typed"
            self._mod._fake.pinned.append(self._name)
        super().__setattr__(name, value)


class _Network(_Strict):
    def __init__(self, flags):
        mod = self._mod
        self._explicit_batch = mod._fake.major >= 10 or bool(
            flags & (1 << int(mod.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)))
        self._model = None
        self._inputs: List[_Tensor] = []
        self._outputs: List[_Tensor] = []
        self._layers: List[_Layer] = []

    def _load(self, model):
        mod = self._mod
        init = {t.name for t in model.graph.initializer}

        def dims(value):
            return [d.dim_value if d.HasField("dim_value") else -1
                    for d in value.type.tensor_type.shape.dim]

        def dtype(value):
            return mod.DataType.HALF if value.type.tensor_type.elem_type == 10 else mod.DataType.FLOAT

        outputs = {o.name for o in model.graph.output}
        self._model = model
        self._inputs = [mod.ITensor(v.name, dims(v), dtype(v), False)
                        for v in model.graph.input if v.name not in init]
        self._outputs = [mod.ITensor(v.name, dims(v), dtype(v), True) for v in model.graph.output]
        for i, node in enumerate(model.graph.node):
            kind = LAYER_OF_OP.get(node.op_type, "UNARY")
            if node.op_type == "InstanceNormalization":
                kind = "PLUGIN_V2" if mod._fake.major < 10 else "NORMALIZATION"
            outs = [mod.ITensor(o, (), mod.DataType.FLOAT, o in outputs) for o in node.output]
            self._layers.append(mod.ILayer(node.name or f"{node.op_type}_{i}", mod.LayerType[kind], outs))

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    num_layers = property(lambda self: len(self._layers))

    def get_input(self, index):
        return self._inputs[index]

    def get_output(self, index):
        return self._outputs[index]

    def get_layer(self, index):
        return self._layers[index]


class _OnnxParser(_Strict):
    def __init__(self, network, logger):
        assert isinstance(network, _Network), "OnnxParser(network, logger): network first"
        self._mod._fake.register_logger(logger)
        self._network, self._errors = network, []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index):
        return _ParserError(self._errors[index])

    def parse(self, model_bytes):
        import onnx
        return self._import(onnx.load_from_string(bytes(model_bytes)))

    def parse_from_file(self, path):
        import onnx
        return self._import(onnx.load(path))

    def _import(self, model):
        state = self._mod._fake
        self._errors = []
        if state.major < 10:
            assert self._network._explicit_batch, (
                "fake TensorRT 8.5: the ONNX parser asserts on an implicit-batch network; create it "
                "with 1 << NetworkDefinitionCreationFlag.EXPLICIT_BATCH")
            opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
            if opset > 17:
                self._errors.append(f"TensorRT 8.5 supports ONNX operators up to opset 17, got {opset}")
            # (the 8.5 parser registers the standard plugins itself: InstanceNormalization_TRT
            # needs no init_libnvinfer_plugins call)
            self._errors += _importer_8_5_errors(model)
        if self._errors:
            return False
        self._network._load(model)
        return True


# The ops onnx-tensorrt 8.5-GA registers importers for (docs/operators.md of that tag);
# anything else fails with "No importer registered for op".
OPS_8_5 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LRN LSTM
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean Min
Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad ParametricSoftplus Pow
QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal
ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign Round ScaledTanh Scan ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu
Unsqueeze Upsample Where Xor""".split())
# inputs the 8.5 importer reads as weights: they must be initializers (or Constant outputs)
WEIGHT_INPUTS_8_5 = {"InstanceNormalization": (1, 2), "Slice": (3,), "Squeeze": (1,)}


def _importer_8_5_errors(model) -> List[str]:
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    errors = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPS_8_5:
            errors.append(f"No importer registered for op: {node.op_type}")
            continue
        for index in WEIGHT_INPUTS_8_5.get(node.op_type, ()):
            if len(node.input) > index and node.input[index] and node.input[index] not in constants:
                errors.append(f"{node.op_type} ({node.name}): input {index} must be an initializer")
        if node.op_type == "Pad" and len(node.input) > 3 and node.input[3]:
            errors.append("Pad: the axes input is not supported")
    return errors


class _Profile(_Strict):
    def __init__(self):
        self._shapes = {}

    def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's own parameter names
        triple = [tuple(int(v) for v in s) for s in (min, opt, max)]
        assert len({len(s) for s in triple}) == 1, "profile shapes of different ranks"
        assert all(a <= b <= c for a, b, c in zip(*triple)), f"profile min <= opt <= max violated: {triple}"
        self._shapes[name] = triple


class _TimingCache(_Strict):
    def __init__(self, owner, entries):
        self._owner, self._entries = owner, entries

    def serialize(self):
        return json.dumps({"owner": self._owner, "entries": self._entries}).encode()


class _Config(_Strict):
    _SETTABLE = ("default_device_type", "DLA_core")

    def __init__(self):
        mod = self._mod
        if mod._fake.major < 11:
            object.__setattr__(self, "_SETTABLE", _Config._SETTABLE + ("int8_calibrator",))
            object.__setattr__(self, "int8_calibrator", None)
        self.default_device_type = mod.DeviceType.GPU
        self.DLA_core = -1
        self._flags, self._pools, self._profiles, self._calibration_profile = set(), {}, [], None
        self._timing_cache = None

    def set_memory_pool_limit(self, pool, nbytes):
        assert isinstance(pool, self._mod.MemoryPoolType) and int(nbytes) > 0
        self._pools[pool] = int(nbytes)

    def set_flag(self, flag):
        assert isinstance(flag, self._mod.BuilderFlag), f"set_flag({flag!r}): not a BuilderFlag"
        self._flags.add(flag)

    def clear_flag(self, flag):
        self._flags.discard(flag)

    def get_flag(self, flag):
        return flag in self._flags

    def add_optimization_profile(self, profile):
        assert isinstance(profile, _Profile)
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, blob):
        state = self._mod._fake
        owner = [state.version, state.gpu]
        if not bytes(blob):
            return self._mod.ITimingCache(owner, 0)
        try:
            data = json.loads(bytes(blob).decode())
            return self._mod.ITimingCache(data["owner"], data["entries"])
        except (ValueError, KeyError, TypeError):
            return None  # as TensorRT: a corrupt blob gives no cache (and an error in the log)

    def set_timing_cache(self, cache, ignore_mismatch):
        if cache is None:  # the bindings reject None with a TypeError
            raise TypeError("set_timing_cache(): incompatible function arguments (cache is None)")
        state = self._mod._fake
        if cache._owner != [state.version, state.gpu] and not ignore_mismatch:
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self):
        return self._timing_cache

    def _set_calibration_profile(self, profile):  # public as set_calibration_profile before 11
        assert profile in self._profiles, "the calibration profile must be an added profile"
        self._calibration_profile = profile


class _HostMemory(bytes):
    @property
    def nbytes(self):
        return len(self)


class _Builder(_Strict):
    def __init__(self, logger):
        self._mod._fake.register_logger(logger)  # Builder(logger)

    num_DLA_cores = property(lambda self: self._mod._fake.num_dla_cores)

    def create_network(self, flags=0):
        return self._mod.INetworkDefinition(int(flags))

    def create_builder_config(self):
        return self._mod.IBuilderConfig()

    def create_optimization_profile(self):
        return self._mod.IOptimizationProfile()

    def build_serialized_network(self, network, config):
        mod, state = self._mod, self._mod._fake
        assert isinstance(network, _Network) and isinstance(config, _Config)
        assert network._model is not None, "build before a successful parse"
        flags = {f.name for f in config._flags}
        ops = {n.op_type for n in network._model.graph.node}
        fp16_onnx = any(t.data_type == 10 for t in network._model.graph.initializer)
        qdq = "QuantizeLinear" in ops
        profile = config._profiles[0]._shapes if config._profiles else {}
        inputs = []
        for tensor in network._inputs:
            shape = list(tensor.shape)
            triple = profile.get(tensor.name)
            if -1 in shape and triple is None:
                return None  # "Network has dynamic or shape inputs, but no optimization profile"
            if triple is not None:
                assert all(s in (-1, v) for s, trip in zip(shape, zip(*triple)) for v in trip), \
                    f"profile {triple} contradicts the static dims {shape} of {tensor.name}"
            inputs.append({"name": tensor.name, "shape": shape, "dtype": int(tensor.dtype),
                           "profile": [list(s) for s in triple] if triple else None})
        precision = "fp16" if ("FP16" in flags or fp16_onnx) else "fp32"
        if "INT8" in flags or qdq:
            precision = "int8"
        dla = None
        if config.default_device_type == mod.DeviceType.DLA:
            if not 0 <= config.DLA_core < state.num_dla_cores:
                return None
            if precision == "fp32" or any(i["profile"] and i["profile"][0] != i["profile"][2]
                                          for i in inputs):
                return None  # the DLA runs FP16/INT8 with static shapes only
            dla = config.DLA_core
        if "INT8" in flags and not qdq:
            if config.int8_calibrator is None:
                return None  # implicit INT8 without a calibrator or dynamic ranges
            if self._calibrate(config, network, inputs) is False:
                return None
        if config._timing_cache is not None:
            config._timing_cache._entries += network.num_layers
        state.builds += 1
        state.last_build = {"flags": sorted(flags), "precision": precision, "dla_core": dla,
                            "workspace": config._pools.get(mod.MemoryPoolType.WORKSPACE)}
        header = {"version": state.version, "gpu": state.gpu, "precision": precision, "dla_core": dla,
                  "inputs": inputs,
                  "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": int(t.dtype)}
                              for t in network._outputs]}
        body = network._model.SerializeToString()
        header["body_bytes"] = len(body)  # lets deserialisation notice a truncated file
        head = json.dumps(header).encode()
        return _HostMemory(MAGIC + struct.pack("<I", len(head)) + head + body)

    def _calibrate(self, config, network, inputs):
        state, calibrator = self._mod._fake, config.int8_calibrator
        assert getattr(calibrator, "_fake_base_init", False), \
            "calibrator subclass must call IInt8EntropyCalibrator2.__init__(self)"
        table = calibrator.read_calibration_cache()
        if table:
            assert bytes(table).startswith(b"FakeEntropyCalibration2"), "foreign calibration table"
            return
        (tensor,) = inputs
        triple = tensor["profile"]
        if triple is not None:
            assert config._calibration_profile is not None, "dynamic INT8 needs set_calibration_profile"
            shape = tuple(config._calibration_profile._shapes[tensor["name"]][1])
        else:
            shape = tuple(tensor["shape"])
        assert calibrator.get_batch_size() == shape[0]
        low, high, batches = np.inf, -np.inf, 0
        while True:
            try:  # as TensorRT's Python wrapper: an exception is printed and ends the data
                pointers = calibrator.get_batch([tensor["name"]])
            except Exception as error:  # noqa: BLE001 - mirrors the real wrapper
                print(f"[TRT] [E] Exception caught in get_batch(): {error}")
                pointers = None
            if not pointers:
                break
            data = MEMORY.read(int(pointers[0]), shape, np.float32)
            low, high, batches = min(low, data.min()), max(high, data.max()), batches + 1
        if batches == 0:  # real TensorRT: "Calibration failure occurred with no scaling factors"
            return False
        state.calibration_batches += batches
        calibrator.write_calibration_cache(
            f"FakeEntropyCalibration2\n{tensor['name']}: {low:.6f} {high:.6f} ({batches} batches)\n".encode())


class _Runtime(_Strict):
    _SETTABLE = ("DLA_core",)

    def __init__(self, logger):
        self._mod._fake.register_logger(logger)  # Runtime(logger)
        self.DLA_core = 0

    def deserialize_cuda_engine(self, data):
        state = self._mod._fake
        data = bytes(data)
        problem = None
        if not data.startswith(MAGIC):
            problem = "not a serialized engine"
        else:
            try:  # a truncated file: TensorRT returns None (its log says why)
                (size,) = struct.unpack("<I", data[8:12])
                header = json.loads(data[12:12 + size])
                complete = len(data) == 12 + size + int(header.get("body_bytes", len(data) - 12 - size))
                problem = None if complete else "truncated engine"
            except (struct.error, ValueError):
                header, problem = {}, "truncated engine"
            if problem is None and header["version"] != state.version:
                problem = f"built by TensorRT {header['version']}, this is {state.version}"
            elif problem is None and header["gpu"] != state.gpu:
                problem = f"built for {header['gpu']}, this is {state.gpu}"
        if problem is not None:
            if state.raise_on_bad_engine:
                raise RuntimeError(f"fake TensorRT: {problem}")
            return None
        return self._mod.ICudaEngine(header, data[12 + size:])


class _Engine(_Strict):
    def __init__(self, header, model_bytes):
        self._header, self._model_bytes, self._session = header, model_bytes, None
        self._io = {t["name"]: t for t in header["inputs"] + header["outputs"]}
        self._names = [t["name"] for t in header["inputs"] + header["outputs"]]
        self._input_names = {t["name"] for t in header["inputs"]}

    num_io_tensors = property(lambda self: len(self._names))

    def get_tensor_name(self, index):
        assert 0 <= index < len(self._names), f"tensor index {index} out of range"
        return self._names[index]

    def _tensor(self, name):
        assert name in self._io, f"no I/O tensor named {name!r}"
        return self._io[name]

    def get_tensor_mode(self, name):
        mode = self._mod.TensorIOMode
        return mode.INPUT if self._tensor(name)["name"] in self._input_names else mode.OUTPUT

    def get_tensor_shape(self, name):
        return tuple(self._tensor(name)["shape"])

    def get_tensor_dtype(self, name):
        return self._mod.DataType(self._tensor(name)["dtype"])

    def create_execution_context(self):
        return self._mod.IExecutionContext(self)

    def _run(self, feeds):
        if self._session is None:
            import onnxruntime as ort
            self._session = ort.InferenceSession(self._model_bytes, providers=["CPUExecutionProvider"])
        precision = self._header["precision"]
        if precision != "fp32":
            feeds = {k: v.astype(np.float16).astype(v.dtype) for k, v in feeds.items()}
        outputs = dict(zip([o.name for o in self._session.get_outputs()], self._session.run(None, feeds)))
        if precision == "fp16":
            outputs = {k: v.astype(np.float16).astype(v.dtype) for k, v in outputs.items()}
        elif precision == "int8":
            outputs = {k: (np.round(v * 64.0) / 64.0).astype(v.dtype) for k, v in outputs.items()}
        return outputs


class _Context(_Strict):
    def __init__(self, engine):
        self._engine, self._addresses, self._shapes, self._out_shapes = engine, {}, {}, {}
        for name in engine._input_names:
            shape = engine.get_tensor_shape(name)
            if -1 not in shape:
                self._shapes[name] = shape

    def set_input_shape(self, name, shape):
        tensor = self._engine._tensor(name)
        assert name in self._engine._input_names, f"set_input_shape on output {name}"
        shape = tuple(int(v) for v in shape)
        if len(shape) != len(tensor["shape"]):
            return False
        if any(s != -1 and s != v for s, v in zip(tensor["shape"], shape)):
            return False
        if tensor["profile"] is not None:
            low, _, high = tensor["profile"]
            if not all(a <= v <= b for a, v, b in zip(low, shape, high)):
                return False
        self._shapes[name] = shape
        return True

    def _output_shapes(self):
        key = tuple(sorted(self._shapes.items()))
        if key not in self._out_shapes:
            feeds = {n: np.zeros(s, _NPTYPES[self._mod.DataType(self._engine._io[n]["dtype"]).name])
                     for n, s in self._shapes.items()}
            self._out_shapes[key] = {k: v.shape for k, v in self._engine._run(feeds).items()}
        return self._out_shapes[key]

    def get_tensor_shape(self, name):
        if name in self._engine._input_names:
            return self._shapes.get(name, self._engine.get_tensor_shape(name))
        static = self._engine.get_tensor_shape(name)
        if -1 not in static:
            return static
        if len(self._shapes) < len(self._engine._input_names):
            return static
        return tuple(self._output_shapes()[name])

    def set_tensor_address(self, name, ptr):
        self._engine._tensor(name)
        assert isinstance(ptr, int) and not isinstance(ptr, bool) and ptr, f"bad address {ptr!r}"
        assert ptr % 256 == 0, f"set_tensor_address({name!r}): {ptr:#x} is not 256-byte aligned"
        self._addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle):
        """Queues the inference on the stream: it reads the inputs and writes the outputs when
        the stream is synchronised, at the addresses and shapes set now (as TensorRT captures them)."""
        assert isinstance(stream_handle, int), "execute_async_v3 takes the stream handle as an int"
        engine = self._engine
        missing = [n for n in engine._names if n not in self._addresses]
        assert not missing, f"execute_async_v3 before set_tensor_address for {missing}"
        assert len(self._shapes) == len(engine._input_names), "execute_async_v3 before set_input_shape"
        addresses, shapes = dict(self._addresses), dict(self._shapes)
        for name in engine._names:
            count = int(np.prod(shapes.get(name, self.get_tensor_shape(name))))
            MEMORY.view(addresses[name], count * np.dtype(self._nptype(name)).itemsize)
        fake_cuda.stream(stream_handle).enqueue(lambda: self._execute(addresses, shapes),
                                                *addresses.values())
        return True

    def _nptype(self, name):
        return _NPTYPES[self._mod.DataType(self._engine._io[name]["dtype"]).name]

    def _execute(self, addresses, shapes):
        engine = self._engine
        feeds = {name: MEMORY.read(addresses[name], shapes[name], self._nptype(name))
                 for name in engine._input_names}
        for name, value in engine._run(feeds).items():
            MEMORY.write(addresses[name], value.astype(self._nptype(name)))
        self._mod._fake.executions += 1

    def execute_v2(self, bindings):
        """The synchronous bindings call, still present in 8.5, 10 and 11 (the project uses
        execute_async_v3): addresses in I/O-tensor order, run on the default stream and waited for."""
        for name, ptr in zip(self._engine._names, bindings):
            self.set_tensor_address(name, int(ptr))
        done = self.execute_async_v3(0)
        fake_cuda.DEFAULT_STREAM.synchronize()
        return done


class _Calibrator:
    """Base of IInt8EntropyCalibrator2 (< 11): subclasses must call its __init__."""

    def __init__(self):
        self._fake_base_init = True


def make_fake_tensorrt(version: str = "10.3.0", gpu: str = FAKE_GPU,
                       num_dla_cores: int = 0) -> types.ModuleType:
    """A fresh fake ``tensorrt`` module emulating ``version`` ("8.5.2.2", "10.3.0", "11.4.0")."""
    state = FakeState(version, gpu, num_dla_cores)
    major = state.major
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version
    mod._fake = state
    network_flags = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
    if major < 10:
        network_flags = {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1}
    elif major >= 11:
        network_flags = {"STRONGLY_TYPED": 1}
    builder_flags = ["GPU_FALLBACK", "REFIT", "DEBUG", "TF32", "SPARSE_WEIGHTS"]
    if major < 11:
        builder_flags += ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
                          "DIRECT_IO"]
    layer_types = sorted(set(LAYER_OF_OP.values()) | {"UNARY", "PLUGIN_V2"}
                         | ({"NORMALIZATION"} if state.minor_version >= (8, 6) else set()))
    mod.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", network_flags)
    mod.BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags)
    mod.MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM",
                                                         "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM"])
    mod.DeviceType = enum.IntEnum("DeviceType", ["GPU", "DLA"])
    mod.TensorIOMode = enum.IntEnum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    mod.DataType = enum.IntEnum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4})
    mod.LayerType = enum.IntEnum("LayerType", layer_types)
    mod.float32, mod.float16 = mod.DataType.FLOAT, mod.DataType.HALF
    mod.int8, mod.int32 = mod.DataType.INT8, mod.DataType.INT32
    mod.nptype = lambda dtype: _NPTYPES[mod.DataType(dtype).name]
    mod.Logger = Logger

    def init_libnvinfer_plugins(logger, namespace):
        assert isinstance(namespace, str)
        state.register_logger(logger)
        state.plugins_initialised = True
        return True

    mod.init_libnvinfer_plugins = init_libnvinfer_plugins

    def bind(cls, public):  # a per-module subclass that knows its module (version, enums, state)
        return type(public, (cls,), {"_mod": mod})

    for cls, public in ((_Builder, "Builder"), (_OnnxParser, "OnnxParser"), (_Runtime, "Runtime"),
                        (_Config, "IBuilderConfig"), (_Network, "INetworkDefinition"),
                        (_Profile, "IOptimizationProfile"), (_TimingCache, "ITimingCache"),
                        (_Engine, "ICudaEngine"), (_Context, "IExecutionContext"), (_Layer, "ILayer"),
                        (_Tensor, "ITensor")):
        setattr(mod, public, bind(cls, public))
    if major < 11:
        mod.IBuilderConfig.set_calibration_profile = _Config._set_calibration_profile
        mod.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (_Calibrator,), {})
    return mod


def install(monkeypatch, version: str = "10.3.0", **kwargs) -> types.ModuleType:
    """Make ``import tensorrt`` return a fresh fake for the rest of the test."""
    fake = make_fake_tensorrt(version, **kwargs)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return fake


def install_for_build(monkeypatch, version: str = "10.3.0", **kwargs) -> types.ModuleType:
    """`install` plus what export.tensorrt needs from a GPU machine: the GPU name (normally
    read from libcuda), polygraphy.cuda (calibration copies) and the device buffers that
    --compare hands to engines.tensorrt_engine.TensorRTEngine."""
    import export.tensorrt as cli
    import export.trt_calibration as calibration
    fake = install(monkeypatch, version, **kwargs)
    cuda = fake_polygraphy_cuda()
    monkeypatch.setattr(cli, "gpu_identity", lambda device_index=0: fake._fake.gpu)
    monkeypatch.setattr(cli, "open_device_buffers", lambda device_index=0: FakeDeviceBuffers())
    monkeypatch.setattr(calibration, "load_cuda_runtime", lambda: cuda)
    return fake

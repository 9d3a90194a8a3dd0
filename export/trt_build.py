"""Building a TensorRT engine from an ONNX generator, on TensorRT 8.5 (Jetson Xavier) to 11.

Three API generations must work from one code path; what differs lives in `precision_plan`, a
pure function of (TensorRT version, precision, DLA core, what the ONNX already contains) that
tests check without TensorRT:

- 8.5: ``create_network`` needs the EXPLICIT_BATCH flag (its ONNX parser asserts it).
  InstanceNormalization is imported as the ``InstanceNormalization_TRT`` plugin, which the 8.5
  parser registers itself; ``init_libnvinfer_plugins`` is still called first (harmless, and
  custom plugins would need it).
- 10: EXPLICIT_BATCH is ignored (pass 0); FP16/INT8 builder flags and calibrators still exist.
- 11: the FP16/INT8 flags, precision-constraint flags and calibrators are gone: networks are
  strongly typed. FP16 needs an FP16-typed ONNX (made here with onnxconverter-common, keeping
  float32 I/O and InstanceNorm in float32); INT8 needs a Q/DQ ONNX (NVIDIA ModelOpt).

Only APIs common to all three are used: ``set_memory_pool_limit`` (never max_workspace_size),
``build_serialized_network``, optimization profiles and the timing-cache calls.
"""
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from engines.base import METADATA_KEY, size_multiple
from engines.onnx_engine import parse_metadata
from engines.tensorrt_engine import TENSORRT_MISSING, trt_logger
from export.trt_cache import ProfileShapes, atomic_write_bytes

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_RESOLUTION = (256, 256)


class TensorRTUnavailable(RuntimeError):
    """``import tensorrt`` failed; the message says how to install it."""


class PrecisionError(ValueError):
    """A precision/DLA/TensorRT-version combination that cannot be built, with what to do."""


class BuildError(RuntimeError):
    """TensorRT rejected the network (parse or build failure)."""


def import_tensorrt():
    """The ``tensorrt`` module, or TensorRTUnavailable with install instructions."""
    try:
        import tensorrt
    except (ImportError, OSError):  # OSError: the bindings exist but libnvinfer.so is missing
        raise TensorRTUnavailable(TENSORRT_MISSING) from None
    return tensorrt


def parse_trt_version(version: str) -> Tuple[int, int]:
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        raise ValueError(f"unrecognised TensorRT version string {version!r}") from None
    return major, minor


# ----------------------------------------------------------------------------- precision plan

@dataclass(frozen=True)
class PrecisionPlan:
    """What to do for one (TensorRT version, precision, DLA) combination."""

    trt_version: str
    precision: str
    network_flags: Tuple[str, ...] = ()  # NetworkDefinitionCreationFlag names OR-ed together
    require_plugins: bool = False  # 8.x: the InstanceNorm plugin path (the parser registers it too)
    builder_flags: Tuple[str, ...] = ()  # BuilderFlag names to set
    convert_onnx_to_fp16: bool = False  # 11+: build from an FP16-typed copy of the ONNX
    calibrate: bool = False  # INT8 by calibration (IInt8EntropyCalibrator2 + a cached table)
    pin_sensitive_layers: bool = False  # INT8: keep first conv, last conv + Tanh, norms in FP16
    dla_core: Optional[int] = None
    notes: Tuple[str, ...] = field(default=())


def precision_plan(trt_version: str, precision: str, dla_core: Optional[int] = None,
                   onnx_is_fp16: bool = False, onnx_has_qdq: bool = False) -> PrecisionPlan:
    """The flags and steps that build ``precision`` on TensorRT ``trt_version``.

    ``onnx_is_fp16``: the ONNX already carries FP16 weights/casts; ``onnx_has_qdq``: it has
    QuantizeLinear/DequantizeLinear nodes (explicit INT8). Raises PrecisionError, saying what
    to do instead, for combinations TensorRT cannot build.
    """
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    major, minor = parse_trt_version(trt_version)
    if (major, minor) < (8, 5):
        raise PrecisionError(f"TensorRT {trt_version} is too old: the name-based I/O API used here "
                             "needs TensorRT 8.5 or newer (JetPack 5.1 ships 8.5.2)")
    notes: List[str] = []
    flags: List[str] = []
    convert = calibrate = pin = False
    if dla_core is not None:
        if dla_core < 0:
            raise PrecisionError(f"--dla-core must be 0 or more, got {dla_core}")
        if precision == "fp32":
            raise PrecisionError("the DLA runs only FP16 or INT8 layers: pass --precision fp16 "
                                 "(or int8) with --dla-core")
        if precision == "int8" and onnx_has_qdq and major < 10:
            raise PrecisionError(f"TensorRT {trt_version} cannot place a Q/DQ (explicitly quantized) "
                                 "ONNX on the DLA: build INT8 for the DLA from the float ONNX with "
                                 "--calib-data, or drop --dla-core")
    if major < 11:
        if precision == "fp16":
            flags.append("FP16")
        elif precision == "int8":
            # FP16 too: layers without an INT8 kernel (InstanceNorm, Tanh) fall back to FP16, not FP32.
            flags += ["INT8", "FP16"]
            if onnx_has_qdq:
                notes.append("the ONNX has Q/DQ nodes: explicit quantization, no calibration")
            else:
                calibrate = pin = True
                # PREFER, not OBEY: a pinned layer without an FP16 kernel falls back instead of failing.
                flags.append("PREFER_PRECISION_CONSTRAINTS")
                notes.append("INT8 by entropy calibration; first conv, last conv + Tanh and "
                             "normalization layers pinned to FP16")
    else:
        if precision == "fp16":
            if onnx_is_fp16:
                notes.append("the ONNX is already FP16-typed: built as typed (strongly typed network)")
            else:
                convert = True
                notes.append(f"TensorRT {trt_version} has no FP16 builder flag: building from an "
                             "FP16-typed copy of the ONNX (float32 I/O, InstanceNorm kept in float32)")
        elif precision == "int8":
            if not onnx_has_qdq:
                raise PrecisionError(
                    f"TensorRT {trt_version} removed implicit INT8 (BuilderFlag.INT8 and calibrators): "
                    "it builds INT8 only from a Q/DQ ONNX. Quantize the model with NVIDIA ModelOpt "
                    "(python -m modelopt.onnx.quantization --onnx_path model.onnx --quantize_mode int8 "
                    "--calibration_data calib.npy) and build that file with --precision int8, or "
                    "use TensorRT 8.5/10 for calibrated INT8")
            notes.append("Q/DQ ONNX: INT8 where the graph says so (strongly typed network)")
        elif onnx_is_fp16:
            notes.append("the ONNX is FP16-typed: TensorRT 11 builds it in those types even for fp32")
        if major > 11:
            notes.append(f"TensorRT {trt_version} is newer than this code knows; using the 11.x recipe")
    if dla_core is not None:
        flags.append("GPU_FALLBACK")
        notes.append(f"DLA core {dla_core} with GPU fallback for layers the DLA cannot run")
    return PrecisionPlan(trt_version=trt_version, precision=precision,
                         network_flags=("EXPLICIT_BATCH",) if major < 10 else (),
                         require_plugins=major < 10, builder_flags=tuple(flags),
                         convert_onnx_to_fp16=convert, calibrate=calibrate,
                         pin_sensitive_layers=pin, dla_core=dla_core, notes=tuple(notes))


# ----------------------------------------------------------------------------- ONNX facts

@dataclass
class OnnxInfo:
    path: str
    metadata: Dict[str, Any]
    input_name: str
    input_dims: List[Optional[int]]  # None for a symbolic (dynamic) dimension
    output_names: List[str]
    opset: int
    op_types: List[str]
    is_fp16: bool
    has_qdq: bool

    @property
    def channels(self) -> int:
        return int(self.input_dims[1])  # type: ignore[arg-type]

    @property
    def multiple_of(self) -> int:
        """H and W must be multiples of this (engines.base.size_multiple of the metadata)."""
        return size_multiple(self.metadata)


def read_onnx_info(path: str) -> OnnxInfo:
    """Inputs, metadata and precision hints of an ONNX file (weights are not loaded)."""
    import onnx
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such ONNX file; export one with python -m export.onnx")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError and friends
        raise ValueError(f"{path}: not a readable ONNX file ({error})") from None
    props = {p.key: p.value for p in model.metadata_props}
    metadata = parse_metadata(props.get(METADATA_KEY), path)
    initializer_names = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializer_names]
    if len(inputs) != 1:
        raise ValueError(f"{path}: expected one input tensor (the generator's), found "
                         f"{[i.name for i in inputs]}")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] is None:
        raise ValueError(f"{path}: input {inputs[0].name!r} must be NCHW with a fixed channel count, "
                         f"got dims {dims}")
    op_types = sorted({n.op_type for n in model.graph.node})
    fp16 = onnx.TensorProto.FLOAT16
    is_fp16 = any(t.data_type == fp16 for t in model.graph.initializer) or any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in n.attribute)
        for n in model.graph.node)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return OnnxInfo(path=path, metadata=metadata, input_name=inputs[0].name, input_dims=dims,
                    output_names=[o.name for o in model.graph.output], opset=opset,
                    op_types=op_types, is_fp16=is_fp16,
                    has_qdq=bool({"QuantizeLinear", "DequantizeLinear"} & set(op_types)))


def convert_to_fp16(src: str, dst: str) -> str:
    """Write an FP16-typed copy of ``src`` to ``dst`` (atomically) for TensorRT 11's FP16.

    I/O stay float32 (the runner and ORT feed float32); InstanceNormalization stays float32
    (its variance over 64k pixels overflows/underflows in half precision) and so do the ops in
    onnxconverter-common's default block list (Resize among them). Metadata is kept.
    """
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError:
        raise PrecisionError(
            "TensorRT 11 builds FP16 engines only from an FP16-typed ONNX: pip install "
            "onnxconverter-common so this tool can convert it, or convert it with NVIDIA ModelOpt "
            f"(python -m modelopt.onnx.autocast --onnx_path {src} --output_path model_fp16.onnx) and "
            "build that file") from None
    model = onnx.load(src)
    converted = float16.convert_float_to_float16(
        model, keep_io_types=True,
        op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + ["InstanceNormalization"])
    atomic_write_bytes(dst, converted.SerializeToString(), overwrite=True)
    return dst


# ----------------------------------------------------------------------------- shapes

def parse_shapes(text: str) -> Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]:
    """``"256x256"`` (static) or ``"128x128:256x256:512x512"`` (min:opt:max), each token HxW
    or a full NxCxHxW; returns (min, opt, max) tuples as written."""
    tokens = text.strip().split(":")
    if len(tokens) not in (1, 3):
        raise ValueError(f"--shapes {text!r}: use HxW (static) or MINHxMINW:OPTHxOPTW:MAXHxMAXW, "
                         "e.g. 256x256 or 128x128:256x256:512x512")
    shapes = []
    for token in tokens:
        try:
            dims = tuple(int(v) for v in token.lower().split("x"))
        except ValueError:
            raise ValueError(f"--shapes {text!r}: {token!r} is not HxW or NxCxHxW") from None
        if len(dims) not in (2, 4) or min(dims) <= 0:
            raise ValueError(f"--shapes {text!r}: {token!r} is not HxW or NxCxHxW of positive sizes")
        shapes.append(dims)
    if len(shapes) == 1:
        shapes *= 3
    return shapes[0], shapes[1], shapes[2]


def resolve_profile(info: OnnxInfo, shapes: Optional[str] = None,
                    dla_core: Optional[int] = None) -> Tuple[ProfileShapes, bool]:
    """(min, opt, max) NCHW shapes of the input and whether an optimization profile is needed.

    Without ``shapes``, a dynamic ONNX is built static at its metadata resolution (fastest, and
    the only kind the DLA accepts); a static ONNX keeps its shape. The batch is 1 unless the
    ONNX fixes it.
    """
    n, c, h, w = info.input_dims
    batch = n or 1
    if shapes is None:
        if h is not None and w is not None:
            hw = (h, w)
        else:
            hw = tuple(int(v) for v in info.metadata.get("resolution", DEFAULT_RESOLUTION))
        triple = [hw, hw, hw]
    else:
        triple = list(parse_shapes(shapes))
    full = []
    for dims in triple:
        if len(dims) == 4:
            if dims[1] != c or (n is not None and dims[0] != n):
                raise ValueError(f"--shapes {shapes!r}: {'x'.join(map(str, dims))} does not fit the "
                                 f"model input {info.input_name} [{n or 'N'}, {c}, H, W]")
            full.append(tuple(dims))
        else:
            full.append((batch, c) + tuple(dims))
    lo, opt, hi = full
    step = info.multiple_of
    for dims in full:
        if dims[2] % step or dims[3] % step:
            raise ValueError(f"{info.path}: height and width must be multiples of {step}, got "
                             f"{dims[2]}x{dims[3]}")
    if not all(a <= b <= d for a, b, d in zip(lo, opt, hi)):
        raise ValueError(f"--shapes {shapes!r}: need min <= opt <= max in every dimension")
    fixed = [(i, v) for i, v in enumerate(info.input_dims) if v is not None]
    for dims in full:
        for i, v in fixed:
            if dims[i] != v:
                raise ValueError(f"{info.path} was exported with a fixed input shape "
                                 f"{info.input_dims}; it cannot be built for {list(dims)}: re-export "
                                 "it with dynamic height/width (python -m export.onnx --dynamic)")
    if dla_core is not None and not lo == opt == hi:
        raise PrecisionError("the DLA accepts no dynamic shapes: give one static size with "
                             "--shapes HxW when using --dla-core")
    dynamic = any(v is None for v in info.input_dims)
    return {info.input_name: (lo, opt, hi)}, dynamic


# ----------------------------------------------------------------------------- building

def pin_sensitive_layers(trt, network) -> List[str]:
    """Keep the layers that INT8 ruins in FP16: the first convolution (raw pixels/labels), the
    last (de)convolution and everything after it (Tanh output), and normalization layers
    (an InstanceNorm plugin on 8.5, a native normalization layer on 10). Returns their names."""
    conv_types = {trt.LayerType.CONVOLUTION, trt.LayerType.DECONVOLUTION}
    norm_types = {getattr(trt.LayerType, name) for name in ("NORMALIZATION", "PLUGIN_V2")
                  if hasattr(trt.LayerType, name)}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    convs = [i for i, layer in enumerate(layers) if layer.type in conv_types]
    if not convs:
        return []
    pinned = {convs[0]} | set(range(convs[-1], len(layers)))
    pinned |= {i for i, layer in enumerate(layers) if layer.type in norm_types}
    floats = (trt.float32, trt.float16)
    names = []
    for i in sorted(pinned):
        layer = layers[i]
        outputs = [layer.get_output(k) for k in range(layer.num_outputs)]
        if not all(t.dtype in floats for t in outputs):
            continue  # shape/index plumbing (Shape, Gather...): not a float computation
        layer.precision = trt.float16
        for k, tensor in enumerate(outputs):
            if not tensor.is_network_output:  # network I/O keep their float32 type
                layer.set_output_type(k, trt.float16)
        names.append(layer.name)
    return names


def _parse_errors(parser) -> str:
    return "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "no details"


def build_serialized_engine(trt, onnx_path: str, plan: PrecisionPlan, profile: ProfileShapes,
                            dynamic: bool, workspace_mb: int = 1024,
                            timing_cache: Optional[str] = None, calibrator=None,
                            verbose: bool = False) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine following ``plan``.

    ``timing_cache``: a file read before and written after the build (atomically); a cache
    from another TensorRT/GPU is ignored. ``calibrator``: an IInt8EntropyCalibrator2 (8.5/10
    INT8). Raises BuildError with TensorRT's reasons.
    """
    logger = trt_logger(trt, "VERBOSE" if verbose else "WARNING")  # one logger per process
    if plan.require_plugins:
        trt.init_libnvinfer_plugins(logger, "")  # 8.5: InstanceNormalization_TRT (belt and braces)
    elif hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")  # harmless later; custom ops may still need it
    builder = trt.Builder(logger)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):  # from the file: resolves external weight files
        raise BuildError(f"TensorRT {trt.__version__} could not parse {onnx_path}: {_parse_errors(parser)}. "
                         "Export with opset 17 (python -m export.onnx) for TensorRT 8.5")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.dla_core is not None:
        cores = builder.num_DLA_cores
        if plan.dla_core >= cores:
            raise PrecisionError(f"--dla-core {plan.dla_core}: this device has {cores} DLA core(s)"
                                 + (" (DLAs exist on Jetson AGX Xavier/Orin, not desktop GPUs)"
                                    if cores == 0 else ""))
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    if dynamic:
        opt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            opt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(opt_profile)
        if calibrator is not None:
            config.set_calibration_profile(opt_profile)  # calibrate at the opt shape
    if plan.pin_sensitive_layers:
        pin_sensitive_layers(trt, network)
    if calibrator is not None:
        config.int8_calibrator = calibrator
    if timing_cache:
        saved = b""
        if os.path.isfile(timing_cache):
            with open(timing_cache, "rb") as handle:
                saved = handle.read()
        cache = config.create_timing_cache(saved)
        if cache is None:  # a corrupt file: TensorRT returns None, and set_timing_cache(None) raises
            print(f"warning: the timing cache {timing_cache} is unreadable; building with an empty "
                  "one (it is rewritten after the build)", file=sys.stderr)
            cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, False):  # a stale/foreign cache: start empty
            config.set_timing_cache(config.create_timing_cache(b""), False)
    try:
        serialized = builder.build_serialized_network(network, config)
    except Exception as error:  # some versions raise instead of returning None
        raise BuildError(f"TensorRT {trt.__version__} failed to build {onnx_path}: {error}") from None
    if serialized is None:
        raise BuildError(f"TensorRT {trt.__version__} failed to build {onnx_path}; its log above "
                         "says why (run with --verbose for more)")
    if timing_cache:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()), overwrite=True)
    return bytes(serialized)

"""The TensorRT backend of the engine contract: runs a serialized ``.engine``/``.plan`` file.

Works unchanged on TensorRT 8.5 (Jetson Xavier, JetPack 5.1), 10 and 11 because it uses only
the name-based I/O API that all three share: ``num_io_tensors``, ``get_tensor_name/mode/shape/
dtype``, ``set_input_shape``, ``set_tensor_address`` and ``execute_async_v3`` (the bindings API,
``execute_async_v2`` and ``max_batch_size`` are gone since 10).

Threading: CUDA work is not free-threaded. **One thread owns the engine for its whole life**:
the thread that constructs `TensorRTEngine` deserialises it, creates the context, the stream and
the device buffers, and only that thread may call ``infer`` and ``close``. In the Qt app that
is the inference worker (a QThread or threading.Thread) which receives inputs through a queue or
signal and sends numpy frames back; calls from any other thread raise RuntimeError instead of
failing later with "invalid resource handle".

Metadata (arch, palette, input kind, MACs...) comes from the JSON sidecar ``<engine>.json``
written by ``python -m export.tensorrt`` (a copy of the ONNX ``gan_compression`` metadata). An
engine only deserialises with the TensorRT version and GPU model that built it; otherwise the
error says how to rebuild it. Device memory comes from `engines.cuda_buffers` (pycuda,
polygraphy or torch); opening an engine never imports torch when pycuda or polygraphy works
(nor OpenCV). ``python -m export.tensorrt --compare`` runs its engines through this class too.
"""
import json
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from engines.base import INPUT_NAME, OUTPUT_NAME, Engine, InputSpec, size_multiple
from engines.cuda_buffers import DeviceBuffers, open_device_buffers

ENGINE_SUFFIXES = (".engine", ".plan")
TENSORRT_MISSING = (
    "TensorRT is not installed for this Python: on a Jetson, use JetPack's python3-libnvinfer "
    "from a venv created with --system-site-packages (see docs/jetson.md); on a desktop with an "
    "NVIDIA GPU, run pip install -r requirements-gpu.txt.")


class TensorRTEngineError(RuntimeError):
    """The engine file cannot be used here (missing TensorRT, foreign GPU/TensorRT version)."""


_LOGGERS: Dict[Any, Any] = {}  # tensorrt module -> the process's one trt.Logger for it
_LOGGERS_LOCK = threading.Lock()


def trt_logger(trt, severity: Optional[str] = None):
    """The single ``trt.Logger`` every Builder, Runtime and parser of this process must share.

    TensorRT keeps one logger pointer for the whole process and ignores later ones, while each
    Runtime keeps only its own logger object alive: with a logger per object, closing one engine
    pane could leave TensorRT pointing at a freed logger, and ``--verbose`` was ignored while
    another runtime lived. ``severity`` ("VERBOSE", "INFO", "WARNING", "ERROR") sets its level.
    """
    with _LOGGERS_LOCK:
        logger = _LOGGERS.get(trt)
        if logger is None:
            logger = _LOGGERS[trt] = trt.Logger(trt.Logger.WARNING)
    if severity is not None:
        logger.min_severity = getattr(trt.Logger, severity)
    return logger


def parse_device(device: Optional[str]) -> int:
    """``None``/``"cuda"``/``"cuda:N"``/``"N"`` -> CUDA device index."""
    if device in (None, "", "cuda", "gpu"):
        return 0
    text = str(device)
    if text.startswith("cuda:"):
        text = text[5:]
    if not text.isdigit():
        raise ValueError(f"device {device!r}: a TensorRT engine runs on 'cuda' or 'cuda:N' (the DLA "
                         "core is chosen when the engine is built, with --dla-core)")
    return int(text)


def sidecar_path(engine_path: str) -> str:
    """``model.engine`` -> ``model.engine.json`` (unambiguous next to any other JSON files)."""
    return engine_path + ".json"


def read_sidecar(engine_path: str) -> Optional[Dict[str, Any]]:
    """The engine's JSON sidecar, or None when there is none (e.g. an engine made by trtexec).
    ``export.trt_cache`` writes it and reads it back with this function."""
    path = sidecar_path(engine_path)
    if not os.path.isfile(path):
        return None
    fix = "delete it and rebuild the engine with python -m export.tensorrt MODEL.onnx"
    with open(path, "rb") as handle:
        try:
            sidecar = json.loads(handle.read().decode("utf-8"))
        except ValueError as error:  # also UnicodeDecodeError
            raise ValueError(f"{path}: unreadable engine sidecar ({error}); {fix}") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("metadata", {}), dict):
        raise ValueError(f"{path}: the engine sidecar must be a JSON object with a 'metadata' object; {fix}")
    return sidecar


class TensorRTEngine(Engine):
    """Runs a TensorRT engine; create, use and close it in one thread (see the module docstring).

    ``buffers``: a `DeviceBuffers` to use instead of `open_device_buffers` (tests, custom
    allocators); it becomes owned by the engine and is closed with it.
    """

    backend = "tensorrt"

    def __init__(self, path: str, device: Optional[str] = None,
                 buffers: Optional[DeviceBuffers] = None):
        super().__init__(path)
        if not path.endswith(ENGINE_SUFFIXES):
            raise ValueError(f"{path}: a TensorRT engine file ends with .engine or .plan")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such engine file; build it with "
                                    "python -m export.tensorrt MODEL.onnx -o " + path)
        self._owner = threading.get_ident()
        self._closed = True  # until fully open: close() then has nothing to release
        try:
            import tensorrt as trt
        except (ImportError, OSError):
            if buffers is not None:
                buffers.close()  # it was handed over to the engine
            raise TensorRTEngineError(TENSORRT_MISSING) from None
        self._trt = trt
        self.sidecar = read_sidecar(path) or {}
        self.metadata = dict(self.sidecar.get("metadata") or {})
        self.precision = self.sidecar.get("precision")
        self.dla_core: Optional[int] = self.sidecar.get("dla_core")
        device_index = parse_device(device)
        self.device = f"dla:{self.dla_core}" if self.dla_core is not None else f"cuda:{device_index}"

        self._buffers = buffers if buffers is not None else open_device_buffers(device_index)
        try:
            self._runtime = trt.Runtime(trt_logger(trt))
            if self.dla_core is not None:
                self._runtime.DLA_core = int(self.dla_core)
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                self._engine = self._runtime.deserialize_cuda_engine(data)
            except Exception as error:  # some versions raise rather than return None
                self._engine = None
                reason = f" ({type(error).__name__}: {error})"
            else:
                reason = ""
            if self._engine is None:
                raise TensorRTEngineError(self._foreign_engine_message(reason))
            self._context = self._engine.create_execution_context()
            self._init_io()
        except BaseException:
            self._buffers.close()
            raise
        self._closed = False
        self._shape: Optional[Tuple[int, ...]] = None  # input shape the buffers are bound for
        self._pointers: Dict[str, int] = {}
        self._hosts: Dict[str, np.ndarray] = {}

    # -- set-up ---------------------------------------------------------------------
    def _foreign_engine_message(self, reason: str) -> str:
        built = ""
        if self.sidecar:
            built = (f"; it was built with TensorRT {self.sidecar.get('trt_version', '?')} on "
                     f"{self.sidecar.get('gpu', '?')}")
        onnx = self.sidecar.get("onnx") or "MODEL.onnx"
        options = ""
        if self.sidecar.get("precision"):
            options += f" --precision {self.sidecar['precision']}"
        if self.dla_core is not None:
            options += f" --dla-core {self.dla_core}"
        return (f"{self.path}: TensorRT {self._trt.__version__} cannot deserialise this engine{reason}. "
                f"Engines only run on the GPU model and TensorRT version that built them{built}. "
                f"Rebuild it on this machine: python -m export.tensorrt {onnx}{options} "
                f"-o {self.path} --force")

    def _init_io(self) -> None:
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise TensorRTEngineError(f"{self.path}: expected one input and an output, found "
                                      f"inputs {inputs} and outputs {outputs}")
        self._input = inputs[0]
        self._outputs: List[str] = outputs
        self._output = OUTPUT_NAME if OUTPUT_NAME in outputs else outputs[0]
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        shape = tuple(int(v) for v in engine.get_tensor_shape(self._input))
        if len(shape) != 4:
            raise TensorRTEngineError(f"{self.path}: input {self._input} is not NCHW ({shape})")
        self._engine_shape = shape
        self._dynamic = -1 in shape
        height = None if shape[2] < 0 else shape[2]
        width = None if shape[3] < 0 else shape[3]
        self.input_spec = InputSpec(self._input or INPUT_NAME, shape[1], height, width,
                                    multiple_of=size_multiple(self.metadata))

    # -- threading ------------------------------------------------------------------
    def _check_thread(self, action: str) -> None:
        if threading.get_ident() != self._owner:
            raise RuntimeError(
                f"{self.path}: TensorRTEngine.{action} called from thread "
                f"{threading.current_thread().name}, but the engine belongs to the thread that "
                "created it: CUDA contexts, streams and buffers are per thread. Create, use and "
                "close the engine in one worker thread and pass inputs/outputs through a queue")

    # -- inference ------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        self._check_thread("infer")
        return super().infer(batch)

    def _bind(self, shape: Tuple[int, ...]) -> None:
        """Set the input shape and (re)allocate + bind device buffers for it."""
        context = self._context
        if self._dynamic:
            if not context.set_input_shape(self._input, shape):
                profile = self.sidecar.get("shapes", {}).get(self._input)
                allowed = (" (built for " + " to ".join("x".join(map(str, s)) for s in profile[::2]) + ")"
                           if profile else "")
                raise ValueError(f"{self.path}: input shape {'x'.join(map(str, shape))} is outside "
                                 f"the engine's optimization profile{allowed}; rebuild with "
                                 "python -m export.tensorrt MODEL.onnx --shapes MIN:OPT:MAX")
        elif shape[0] != self._engine_shape[0]:
            raise ValueError(f"{self.path}: the engine was built for batch {self._engine_shape[0]}, "
                             f"got {shape[0]}")
        self._release_buffers()
        sizes = {self._input: int(np.prod(shape)) * self._dtypes[self._input].itemsize}
        for name in self._outputs:
            out_shape = tuple(int(v) for v in context.get_tensor_shape(name))
            self._hosts[name] = np.empty(out_shape, dtype=self._dtypes[name])
            sizes[name] = self._hosts[name].nbytes
        for name, nbytes in sizes.items():
            self._pointers[name] = self._buffers.allocate(nbytes)
            if not context.set_tensor_address(name, self._pointers[name]):
                raise TensorRTEngineError(f"{self.path}: set_tensor_address({name}) failed")
        self._shape = shape

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape != self._shape:
            self._bind(batch.shape)
        buffers = self._buffers
        host_in = np.ascontiguousarray(batch, dtype=self._dtypes[self._input])
        buffers.upload(self._pointers[self._input], host_in)
        try:
            if not self._context.execute_async_v3(buffers.stream_handle):
                raise TensorRTEngineError(f"{self.path}: TensorRT execute_async_v3 failed (see its log)")
            for name in self._outputs:
                buffers.download(self._hosts[name], self._pointers[name])
        finally:
            # The stream runs the copies and the inference later, reading host_in and writing
            # self._hosts when it gets to them: wait for it before either is reused or freed, also
            # when enqueueing failed after the upload was queued (close() then frees device memory).
            buffers.synchronize()
        # A copy: the next call's download overwrites self._hosts.
        return self._hosts[self._output].astype(np.float32, copy=True)

    # -- lifecycle ------------------------------------------------------------------
    def _release_buffers(self) -> None:
        for ptr in self._pointers.values():
            self._buffers.free(ptr)
        self._pointers = {}
        self._hosts = {}
        self._shape = None

    def close(self) -> None:
        """Free buffers, context, engine and runtime (in the owning thread); idempotent."""
        if self._closed:
            return
        self._check_thread("close")
        self._release_buffers()
        # Destroy in dependency order while the CUDA context is still current.
        self._context = None
        self._engine = None
        self._runtime = None
        self._buffers.close()
        super().close()

    def describe(self) -> str:
        text = super().describe()
        extras = [p for p in (self.precision, f"TensorRT {self._trt.__version__}") if p]
        return f"{text} [{', '.join(extras)}]"

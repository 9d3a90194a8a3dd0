"""ONNX Runtime engine: runs an exported generator (``.onnx``) on CPU, CUDA or TensorRT
execution providers, without torch (the lean Jetson path).

The checkpoint metadata (architecture, palette, input kind, resolution, MACs) travels inside the
ONNX file as the JSON string of the ``metadata_props`` key `engines.base.METADATA_KEY`;
`read_onnx_metadata` reads it without starting a session (the one reader: export uses it too,
with ``required=True``). Importing this module needs neither torch nor OpenCV.
"""
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np

from compress.common.onnx_contract import (OPTIMIZATION_NAMES, import_ort, make_session_options,
                                           optimization_level)
from engines.base import INPUT_NAME, METADATA_KEY, Engine, InputSpec, size_multiple

# The session settings live in compress.common.onnx_contract so that the compression search
# times candidates in sessions configured exactly like this engine's; re-exported here.
__all__ = ["DEVICES", "PROVIDERS", "OPTIMIZATION_NAMES", "INSTALL_HINT", "parse_metadata",
           "read_onnx_metadata", "optimization_level", "make_session_options", "OnnxRuntimeEngine"]

DEVICES = ("cpu", "cuda", "tensorrt")
# Provider preference per requested device; ORT tries them in order, CPU last for unsupported ops.
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
INSTALL_HINT = ("install onnxruntime-gpu instead of onnxruntime (never both: they share one "
                "package directory); on Jetson use NVIDIA's Jetson Zoo wheel")


def parse_metadata(text: Optional[str], path: str, required: bool = False) -> Dict[str, Any]:
    """The checkpoint metadata from the JSON string stored under `METADATA_KEY`.

    ``{}`` when there is none, or ValueError naming ``path`` when ``required`` (the exporters
    require it; the engines run foreign files without it)."""
    if not text:
        if required:
            raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; export it with "
                             "`python -m export.onnx CHECKPOINT -o FILE.onnx`")
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        raise ValueError(f"{path}: the '{METADATA_KEY}' metadata is not valid JSON; "
                         "re-export the model with python -m export.onnx") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the '{METADATA_KEY}' metadata must be a JSON object")
    return meta


def read_onnx_metadata(path: str, required: bool = False) -> Dict[str, Any]:
    """The checkpoint metadata stored in an ONNX file ({} when it carries none, ValueError
    naming the file with ``required=True``).

    Reads the model proto with the ``onnx`` package (weights left on disk when external); falls
    back to an ONNX Runtime session when ``onnx`` is not installed. A missing file raises
    FileNotFoundError, an unreadable one ValueError.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is None:
        ort = import_ort()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        return parse_metadata(text, path, required)
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # onnx raises DecodeError / OSError depending on the damage
        raise ValueError(f"{path}: not a readable ONNX file ({error}); re-export it") from None
    props = {prop.key: prop.value for prop in model.metadata_props}
    return parse_metadata(props.get(METADATA_KEY), path, required)


def _dim(value) -> Optional[int]:
    """A fixed ONNX dimension, or None for a symbolic one ("height", "unk__12", None)."""
    return int(value) if isinstance(value, int) and value > 0 else None


class OnnxRuntimeEngine(Engine):
    """A generator in an ONNX Runtime ``InferenceSession``.

    Args:
        path: the ``.onnx`` file.
        device: "cpu", "cuda" or "tensorrt" (execution providers, with CPU fallback for
            unsupported ops). A device whose provider is missing raises ValueError.
        threads: intra-op thread count (None: ORT's default).
        optimization: graph optimisation level name (see `OPTIMIZATION_NAMES`).
        spinning: let idle intra-op threads busy-wait (ORT's default); False on shared CPUs.
        session_options: a ready ``onnxruntime.SessionOptions`` (overrides the three above).
    """

    backend = "onnxruntime"

    def __init__(self, path: str, device: Optional[str] = None, threads: Optional[int] = None,
                 optimization: str = "all", spinning: bool = True, session_options=None):
        super().__init__(path)
        ort = import_ort()
        device = device or "cpu"
        kind, _, index = device.partition(":")  # "cuda:1" -> GPU 1
        if kind not in DEVICES or (index and not (kind == "cuda" and index.isdigit())):
            raise ValueError(f"{path}: unknown device {device!r} for ONNX Runtime; valid: "
                             f"{', '.join(DEVICES)}, cuda:N")
        providers = PROVIDERS[kind]
        available = ort.get_available_providers()
        if providers[0] not in available:
            raise ValueError(f"{path}: device {device!r} needs {providers[0]}, but this "
                             f"onnxruntime {ort.__version__} offers only {', '.join(available)}; "
                             f"{INSTALL_HINT}, or use device='cpu'")
        self.session_options = session_options or make_session_options(threads, optimization, spinning)
        self.threads = threads
        self.optimization = optimization
        try:
            # GPU providers take the device index; the CPU provider takes no options.
            provider_options = [{"device_id": index} if name != "CPUExecutionProvider" and index
                                else {} for name in providers]
            self.session = ort.InferenceSession(path, self.session_options, providers=providers,
                                                provider_options=provider_options)
        except Exception as error:  # ORT raises its own Fail/InvalidProtobuf/NoSuchFile types
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"{path}: ONNX Runtime cannot load this model ({message}); "
                             "re-export it with python -m export.onnx") from None
        # ORT silently falls back to CPU when a GPU provider's libraries (CUDA, cuDNN, TensorRT)
        # fail to load; report that instead of benchmarking the wrong device.
        active = self.session.get_providers()
        if providers[0] not in active:
            raise ValueError(f"{path}: {providers[0]} failed to load (ONNX Runtime fell back to "
                             f"{', '.join(active)}); check that the CUDA/cuDNN/TensorRT libraries "
                             "this onnxruntime-gpu build needs are installed, or use device='cpu'")
        self.device = device
        self.providers: List[str] = active
        self.metadata = parse_metadata(
            self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ValueError(f"{path}: expected one image input, got {len(inputs)} inputs; "
                             "not a generator exported by this project?")
        shape = list(inputs[0].shape)
        if len(shape) != 4 or _dim(shape[1]) is None:
            raise ValueError(f"{path}: input {inputs[0].name!r} has shape {shape}; expected "
                             "[N, C, H, W] with a fixed channel count")
        if inputs[0].type != "tensor(float)":  # the runners feed float32 (the export's dtype)
            raise ValueError(f"{path}: input {inputs[0].name!r} is {inputs[0].type}, but the engines feed "
                             "float32 images; export the generator in float32 (python -m export.onnx), "
                             "and use TensorRT's --precision fp16 for half precision")
        if inputs[0].name != INPUT_NAME:  # tolerated: foreign exports name tensors freely
            self.metadata.setdefault("input_name", inputs[0].name)
        self.input_spec = InputSpec(inputs[0].name, int(shape[1]), _dim(shape[2]), _dim(shape[3]),
                                    multiple_of=size_multiple(self.metadata))
        self._fixed_batch = _dim(shape[0])
        self._output_name = outputs[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._fixed_batch is not None and batch.shape[0] != self._fixed_batch:
            raise ValueError(f"{self.path}: exported for batch size {self._fixed_batch}, got "
                             f"{batch.shape[0]}; export with a dynamic batch axis")
        return self.session.run([self._output_name], {self.input_spec.name: batch})[0]

    def close(self) -> None:
        # Dropping the session frees its memory arena (and GPU memory on CUDA providers).
        self.session = None
        super().close()

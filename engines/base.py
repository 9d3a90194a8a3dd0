"""The one contract every inference backend implements (PyTorch, ONNX Runtime, TensorRT).

An `Engine` is opened on a model file, used as a context manager, and runs
``infer(batch) -> array`` on float32 NCHW numpy arrays (values in [-1, 1] in, [-1, 1] out). It
exposes what callers need without knowing the backend: the input spec, the model's metadata
(architecture, palette, input kind, resolution, MACs, params) and the last latency. The small
metadata facts every backend and the exporters share (`METADATA_KEY`, tensor names,
`model_family`, `size_multiple`) live here too; the file-contract constants are defined once in
`compress.common.onnx_contract` (the latency search of compress/ needs them and may not import
engines) and re-exported here. This module imports only numpy and that torch-free module, so
the lean Jetson path never pulls torch (or OpenCV) in.
"""
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from compress.common.onnx_contract import INPUT_NAME, MAX_MODEL_SIDE, METADATA_KEY, OUTPUT_NAME

__all__ = ["METADATA_KEY", "INPUT_NAME", "OUTPUT_NAME", "MAX_MODEL_SIDE", "SPADE_UPSAMPLINGS",
           "RESNET_MULTIPLE", "model_family", "size_multiple", "InputSpec", "Engine"]

# x2 upsamplings of a SPADE generator per upstream option (compress.models.spade has the same
# table, but that module imports torch).
SPADE_UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
RESNET_MULTIPLE = 4  # two stride-2 downsamplings


def model_family(metadata: Dict[str, Any]) -> Optional[str]:
    """"spade" or "resnet" from the metadata's architecture name; None when it has none."""
    arch = metadata.get("arch")
    if not arch:
        return None
    return "spade" if "spade" in str(arch) else "resnet"


def size_multiple(metadata: Dict[str, Any]) -> int:
    """Input height and width must be multiples of this (2**n_up for SPADE, 4 for ResNets)."""
    if model_family(metadata) == "spade":
        option = metadata.get("build", {}).get("num_upsampling_layers", "normal")
        return 2 ** SPADE_UPSAMPLINGS.get(option, 5)
    return RESNET_MULTIPLE


@dataclass(frozen=True)
class InputSpec:
    """Shape of the model input. ``height``/``width`` are None when the model is dynamic."""

    name: str
    channels: int
    height: Optional[int]
    width: Optional[int]
    multiple_of: int = 4  # H and W must be multiples of this (2 stride-2 downs; 2**n_up for SPADE)
    dtype: str = "float32"

    @property
    def dynamic(self) -> bool:
        return self.height is None or self.width is None

    def check(self, batch: np.ndarray, source: str = "input") -> np.ndarray:
        """Return ``batch`` as C-contiguous float32, or raise ValueError saying what is wrong."""
        batch = np.asarray(batch)
        if batch.ndim != 4:
            raise ValueError(f"{source}: expected a 4-D NCHW batch, got shape {batch.shape}")
        if batch.shape[1] != self.channels:
            raise ValueError(f"{source}: model expects {self.channels} input channels, got "
                             f"{batch.shape[1]} (shape {batch.shape})")
        height, width = batch.shape[2:]
        if self.dynamic:
            if height % self.multiple_of or width % self.multiple_of:
                raise ValueError(f"{source}: height and width must be multiples of "
                                 f"{self.multiple_of}, got {height}x{width}")
        elif (height, width) != (self.height, self.width):
            raise ValueError(f"{source}: model was exported for {self.height}x{self.width}, got "
                             f"{height}x{width}; resize the input or export with --dynamic")
        if not np.issubdtype(batch.dtype, np.floating):
            raise ValueError(f"{source}: expected float values in [-1, 1], got dtype {batch.dtype}")
        return np.ascontiguousarray(batch, dtype=np.float32)


class Engine:
    """Base class: subclasses set the attributes in ``__init__`` and implement ``_run``."""

    backend = "base"

    def __init__(self, path: str):
        self.path = path
        self.device = "cpu"
        self.metadata: Dict[str, Any] = {}
        self.input_spec = InputSpec(INPUT_NAME, 3, None, None)
        self.last_latency_ms: Optional[float] = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the backend's resources; idempotent."""
        self._closed = True

    @property
    def is_open(self) -> bool:
        return not self._closed

    # -- inference ------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the generator on an NCHW float batch; records ``last_latency_ms``."""
        if self._closed:
            raise RuntimeError(f"{self.path}: engine is closed; open it again with open_engine()")
        batch = self.input_spec.check(batch, source=self.path)
        start = time.perf_counter()
        output = self._run(batch)
        self.last_latency_ms = (time.perf_counter() - start) * 1000.0
        return output

    def _run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- description ----------------------------------------------------------------
    @property
    def resolution(self) -> Tuple[int, int]:
        """The model's native (height, width): the exported shape, else the metadata's."""
        if not self.input_spec.dynamic:
            return self.input_spec.height, self.input_spec.width  # type: ignore[return-value]
        height, width = self.metadata.get("resolution", (256, 256))
        return int(height), int(width)

    def describe(self) -> str:
        macs = self.metadata.get("macs")
        return (f"{self.backend} on {self.device}: {self.metadata.get('arch', '?')}"
                + (f" ({macs / 1e9:.2f}G MACs)" if macs else ""))

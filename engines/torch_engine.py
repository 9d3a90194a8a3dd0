"""PyTorch engine: runs a generator checkpoint (the project's ``.safetensors`` or an official
``.pth`` state_dict) on CPU or CUDA under ``torch.inference_mode``.

This is the only engine that imports torch and `compress` (through `compress.models.checkpoints`);
the factory imports it only when a checkpoint is opened.
"""
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from compress.models.checkpoints import default_resolution, load_generator
from engines.base import INPUT_NAME, Engine, InputSpec
from engines.base import size_multiple

DEVICES = ("cpu", "cuda")


class PyTorchEngine(Engine):
    """A zoo generator in eval mode.

    Args:
        path: ``.safetensors`` (metadata inside) or official ``.pth`` checkpoint.
        device: "cpu", "cuda" or "cuda:N" (default "cpu").
        threads: intra-op thread count for CPU inference (None: torch's default). torch's
            setting is per process: the engine re-applies it before each run and restores
            the previous value on close.
        build: `build_generator` overrides plus ``arch``, e.g. ``{"arch":
            "sub_mobile_resnet_9blocks", "config": "16_16_32_16_32_32_16_16"}``; official
            ``.pth`` files need them unless their tensor shapes identify the architecture.
        resolution, palette, input_kind: metadata for files that carry none (official ``.pth``).
        profile: count MACs/params when the metadata lacks them (official files; costs a
            forward trace at open time).
    """

    backend = "torch"

    def __init__(self, path: str, device: Optional[str] = None, threads: Optional[int] = None,
                 build: Optional[Dict[str, Any]] = None, resolution: Optional[Tuple[int, int]] = None,
                 palette: Optional[str] = None, input_kind: Optional[str] = None,
                 profile: bool = True):
        super().__init__(path)
        device = device or "cpu"
        if device.split(":")[0] not in DEVICES:
            raise ValueError(f"{path}: unknown device {device!r} for PyTorch; valid: "
                             f"{', '.join(DEVICES)}, cuda:N (TensorRT needs an exported .onnx/.engine)")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"{path}: device 'cuda' requested but PyTorch sees no CUDA GPU "
                             f"(torch {torch.__version__}); use device='cpu' or install a CUDA build")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = None if threads is None else int(threads)
        self._threads_before = torch.get_num_threads()  # restored on close: it is process-wide
        self._apply_threads()
        # Raises CheckpointError (a ValueError) naming the file and the architectures that fit.
        model, meta = load_generator(path, **dict(build or {}))
        self.model = model.to(device).eval()
        self.device = device
        meta = dict(meta)
        if resolution is not None:
            meta["resolution"] = [int(resolution[0]), int(resolution[1])]
        meta.setdefault("resolution", list(default_resolution(model)))
        if palette is not None:
            meta["palette"] = palette
        meta.setdefault("palette", None)
        if input_kind is not None:
            meta["input_kind"] = input_kind
        meta.setdefault("input_kind", "label" if model.family == "spade" else None)
        if profile and "macs" not in meta:
            from compress.models.profile import count_macs  # only for files without metadata
            height, width = meta["resolution"]
            meta.update(count_macs(model.to("cpu"), (1, model.input_nc, height, width)))
            self.model = model.to(device)
        self.metadata = meta
        # PyTorch runs any size that is a multiple of the model's down/up-sampling factor.
        self.input_spec = InputSpec(INPUT_NAME, int(model.input_nc), None, None,
                                    multiple_of=size_multiple(meta))

    def _apply_threads(self) -> None:
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._apply_threads()
        with torch.inference_mode():
            output = self.model(torch.from_numpy(batch).to(self.device))
            # .cpu() waits for CUDA kernels, so the measured latency includes the GPU work.
            return output.float().cpu().numpy()

    def close(self) -> None:
        if self.is_open:
            self.model = None
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if self.threads is not None:
                torch.set_num_threads(self._threads_before)
        super().close()

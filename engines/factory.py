"""``open_engine(path)``: the one way to open a model file as an `engines.base.Engine`.

The file extension picks the engine through the explicit `OPENERS` dict. Each opener imports
its backend only when called, so opening an ``.onnx`` or ``.engine`` file never imports torch
(the lean Jetson path), and importing this module imports no backend at all.
"""
import os
import re
from typing import Any, Callable, Dict, Optional

from engines.base import Engine

# Backend names accepted by ``backend=`` and the extensions each one opens.
BACKEND_EXTENSIONS = {
    "torch": (".safetensors", ".pth"),
    "onnxruntime": (".onnx",),
    "tensorrt": (".engine", ".plan"),
}
DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "tensorrt")
# Backend-specific keyword options open_engine forwards to the engine class.
BACKEND_OPTIONS = {
    "torch": ("build", "resolution", "palette", "input_kind", "profile"),
    "onnxruntime": ("optimization", "spinning", "session_options"),
    "tensorrt": ("buffers",),
}


def _open_torch(path: str, device: Optional[str], threads: Optional[int], **options) -> Engine:
    from engines.torch_engine import PyTorchEngine
    return PyTorchEngine(path, device=device, threads=threads, **options)


def _open_onnxruntime(path: str, device: Optional[str], threads: Optional[int], **options) -> Engine:
    from engines.onnx_engine import OnnxRuntimeEngine
    return OnnxRuntimeEngine(path, device=device, threads=threads, **options)


def _open_tensorrt(path: str, device: Optional[str], threads: Optional[int], **options) -> Engine:
    if device == "tensorrt":  # "run with TensorRT": the engine file already is one
        device = None
    if device is not None and not device.startswith("cuda"):
        raise ValueError(f"{path}: a TensorRT engine runs on the GPU only (device 'cuda' or "
                         f"'cuda:N'), not {device!r}; open the .onnx file for CPU inference")
    try:
        from engines.tensorrt_engine import TensorRTEngine
    except ImportError as error:
        raise ImportError(f"{path}: cannot run TensorRT engines here ({error}); TensorRT comes "
                          "with JetPack or requirements-gpu.txt; on CPU open the .onnx file "
                          "instead") from None
    return TensorRTEngine(path, device=device, **options)


# Extension -> opener; the backend names in BACKEND_EXTENSIONS map to the same openers.
OPENERS: Dict[str, Callable[..., Engine]] = {
    ".safetensors": _open_torch,
    ".pth": _open_torch,
    ".onnx": _open_onnxruntime,
    ".engine": _open_tensorrt,
    ".plan": _open_tensorrt,
}
BACKEND_OPENERS: Dict[str, Callable[..., Engine]] = {
    "torch": _open_torch,
    "onnxruntime": _open_onnxruntime,
    "tensorrt": _open_tensorrt,
}


def extension_of(path: str) -> str:
    return os.path.splitext(str(path))[1].lower()


def open_engine(path: str, backend: Optional[str] = None, device: Optional[str] = None,
                threads: Optional[int] = None, **options: Any) -> Engine:
    """Open a model file as an Engine (use it as a context manager).

    Args:
        path: ``.safetensors``/``.pth`` (PyTorch), ``.onnx`` (ONNX Runtime) or
            ``.engine``/``.plan`` (TensorRT).
        backend: None (from the extension) or "torch" | "onnxruntime" | "tensorrt"; must fit
            the extension.
        device: "cpu" | "cuda" | "cuda:N" | "tensorrt" (ONNX Runtime's TensorRT provider);
            None picks the backend's default (CPU for PyTorch/ONNX Runtime, GPU 0 for TensorRT).
        threads: intra-op CPU thread count (None: the backend's default).
        options: backend-specific: PyTorch ``build={"arch": ..., "config": ...}``,
            ``resolution``, ``palette``, ``input_kind``, ``profile``; ONNX Runtime
            ``optimization``, ``spinning``, ``session_options``; TensorRT ``buffers``.
    Raises:
        FileNotFoundError naming the expected path; ValueError for an unknown extension,
        backend or device, or a backend that cannot open this extension.
    """
    path = os.fspath(path)
    extension = extension_of(path)
    if extension not in OPENERS:
        raise ValueError(f"{path}: cannot open '{extension or 'no extension'}' files; valid "
                         f"model files: {', '.join(OPENERS)}")
    if backend is not None:
        if backend not in BACKEND_OPENERS:
            raise ValueError(f"{path}: unknown backend {backend!r}; valid: "
                             f"{', '.join(BACKEND_OPENERS)}")
        if extension not in BACKEND_EXTENSIONS[backend]:
            raise ValueError(f"{path}: backend {backend!r} opens "
                             f"{'/'.join(BACKEND_EXTENSIONS[backend])} files, not {extension}; "
                             "export the model first (python -m export.onnx) or drop --backend")
    if device is not None and not (device in DEVICE_CHOICES or re.fullmatch(r"cuda:\d+", device)):
        raise ValueError(f"{path}: unknown device {device!r}; valid: {', '.join(DEVICE_CHOICES)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: expected {os.path.abspath(path)}")
    opener = BACKEND_OPENERS[backend] if backend is not None else OPENERS[extension]
    name = backend or next(b for b, exts in BACKEND_EXTENSIONS.items() if extension in exts)
    unknown = sorted(set(options) - set(BACKEND_OPTIONS[name]))
    if unknown:
        raise ValueError(f"{path}: the {name} backend takes no option {', '.join(unknown)}; "
                         f"valid: {', '.join(BACKEND_OPTIONS[name])}")
    return opener(path, device, threads, **options)

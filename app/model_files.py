"""Model files as the app sees them before any engine is opened: default paths, metadata
peeked without a backend, the backends installed here, and the compatibility of two models.

Peeking lets the app refuse a missing file or a palette mismatch with a clear message at start-up,
before worker threads open the engines; it never imports torch (an ONNX file is read with the
``onnx`` package, a checkpoint's safetensors header with ``safetensors``' numpy reader, an engine's
metadata from its ``.json`` sidecar).
"""
import importlib.util
import json
import os
from typing import Any, Dict, List, Optional, Tuple

from engines.base import MAX_MODEL_SIDE
from engines.factory import BACKEND_EXTENSIONS, extension_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLACEHOLDER_DIR = os.path.join(REPO, "build", "placeholder_models")
MODEL_DIR = os.path.join(REPO, "assets", "models")
TRAINED_DIR = os.path.join(MODEL_DIR, "facades")
SAMPLES_DIR = os.path.join(REPO, "assets", "samples")
# Default model pairs, first existing wins: the trained facades pair shipped in assets/models/facades
# (see its MODEL_CARD.md), then the untrained placeholders that `python -m export.placeholders` builds.
DEFAULT_PAIRS = (
    (os.path.join(TRAINED_DIR, "original.onnx"), os.path.join(TRAINED_DIR, "compressed.onnx")),
    (os.path.join(PLACEHOLDER_DIR, "original.onnx"), os.path.join(PLACEHOLDER_DIR, "compressed.onnx")),
)
BACKEND_MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "tensorrt": "tensorrt"}
MODEL_FILTER = "Models (*.onnx *.safetensors *.pth *.engine *.plan)"


def default_models() -> Tuple[str, str]:
    """(original, compressed) paths of the first default pair that exists, else the
    placeholders' paths (the caller reports them as missing, with the command to build them)."""
    for original, compressed in DEFAULT_PAIRS:
        if os.path.isfile(original) and os.path.isfile(compressed):
            return original, compressed
    return DEFAULT_PAIRS[-1]


def missing_model_message(path: str) -> str:
    message = f"model file not found: {os.path.abspath(path)}"
    if os.path.abspath(path).startswith(PLACEHOLDER_DIR):
        message += ("; build the placeholder models with `python -m export.placeholders` "
                    "(or `make demo`), or pass --original/--compressed")
    return message


def installed_backends() -> List[str]:
    """Backends whose Python package is importable here (found without importing it)."""
    return [name for name, module in BACKEND_MODULES.items()
            if importlib.util.find_spec(module) is not None]


def backend_of(path: str) -> Optional[str]:
    """The backend that opens ``path`` by its extension (None for unknown extensions)."""
    extension = extension_of(path)
    for backend, extensions in BACKEND_EXTENSIONS.items():
        if extension in extensions:
            return backend
    return None


def file_for_backend(path: str, backend: Optional[str]) -> Optional[str]:
    """``path`` itself when ``backend`` opens it, else an existing sibling with the same stem
    and one of the backend's extensions (model.onnx -> model.safetensors), else None."""
    if backend is None or backend_of(path) == backend:
        return path
    stem = os.path.splitext(path)[0]
    for extension in BACKEND_EXTENSIONS[backend]:
        if os.path.isfile(stem + extension):
            return stem + extension
    return None


def resolve_for_backend(path: str, backend: Optional[str]) -> str:
    """`file_for_backend`, or a ValueError saying which file the backend needs."""
    resolved = file_for_backend(path, backend)
    if resolved is None:
        assert backend is not None
        wanted = " or ".join(os.path.splitext(path)[0] + ext for ext in BACKEND_EXTENSIONS[backend])
        raise ValueError(f"backend {backend!r} cannot open {path} and there is no {wanted}; export "
                         "the model (python -m export.onnx / export.tensorrt) or drop --backend")
    return resolved


def peek_metadata(path: str) -> Dict[str, Any]:
    """A model file's metadata without opening an engine ({} when the file carries none, e.g.
    an official .pth). Raises FileNotFoundError or ValueError naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(missing_model_message(path))
    extension = extension_of(path)
    if extension == ".onnx":
        from engines.onnx_engine import read_onnx_metadata  # onnx only, no session, no torch
        return read_onnx_metadata(path)
    if extension == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(path, framework="numpy") as handle:
                header = handle.metadata() or {}
        except Exception as error:  # safetensors raises its own SafetensorError
            raise ValueError(f"{path}: not a readable safetensors checkpoint ({error})") from None
        try:
            meta = json.loads(header.get("meta", "{}"))
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: the checkpoint metadata is not a JSON object; re-save it with "
                             "python -m compress.checkpoints convert") from None
        return meta
    if extension in (".engine", ".plan"):
        from engines.tensorrt_engine import read_sidecar  # numpy-only at import time
        sidecar = read_sidecar(path) or {}
        return dict(sidecar.get("metadata") or {})
    if extension == ".pth":
        return {}
    raise ValueError(f"{path}: not a model file; expected .onnx, .safetensors, .pth or .engine")


class PairMismatch(ValueError):
    """Two models that cannot share one canvas (other input kind or palette); the app offers to
    switch the pair instead of just refusing. ``metadata``: the new model's, already peeked."""

    def __init__(self, message: str, metadata: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.metadata = metadata or {}


def compatibility_problem(original: Dict[str, Any], compressed: Dict[str, Any]) -> Optional[str]:
    """Why two models cannot share one canvas (None when they can): their input kind or
    palette differ. Missing keys (official .pth files) are not held against them."""
    for key, what in (("input_kind", "input kinds"), ("palette", "palettes")):
        first, second = original.get(key), compressed.get(key)
        if first is not None and second is not None and first != second:
            return (f"the models have different {what}: original {first!r}, compressed "
                    f"{second!r}; both panes draw from one canvas, so pick two models trained "
                    "on the same dataset")
    return None


def canvas_kind(metadata: Dict[str, Any]) -> str:
    """"label" or "sketch": what the canvas edits for this model. Raises ValueError for models
    that take photos (nothing to draw) or name no input kind and no palette."""
    kind = metadata.get("input_kind")
    if kind is None and metadata.get("palette"):
        kind = "label"
    if kind in ("label", "sketch"):
        return kind
    if kind == "image":
        raise ValueError("this model translates photos (input_kind 'image'); the demo draws label "
                         "maps or sketches: open a label->photo or edges->photo model")
    raise ValueError("the model's metadata names no input kind or palette, and the app does not guess "
                     "them; re-export it with --palette NAME / --input-kind label|sketch")


def how_to_add_metadata(path: str) -> str:
    """The command that gives ``path`` the metadata the app needs."""
    extension = extension_of(path)
    if extension in (".pth", ".safetensors"):
        out = os.path.splitext(path)[0] + ".safetensors"
        if out == path:
            out = os.path.splitext(path)[0] + "_meta.safetensors"
        return (f"python -m compress.checkpoints convert {path} -o {out} --palette NAME --input-kind label "
                "(label maps), or --input-kind sketch without --palette (edges)")
    if extension == ".onnx":
        return ("python -m export.onnx CHECKPOINT.safetensors --palette NAME --input-kind label|sketch "
                "(the checkpoint's own metadata is copied, so converting the checkpoint first also works)")
    return "build the engine from an ONNX file that carries the metadata (python -m export.tensorrt)"


def require_kind(path: str, metadata: Dict[str, Any]) -> str:
    """`canvas_kind` of a model file, or a one-line ValueError that names the file and the
    command adding its metadata (an official .pth has none: its kind is never guessed)."""
    model_resolution(metadata, path)  # a bounded canvas size, checked before anything is allocated
    try:
        return canvas_kind(metadata)
    except ValueError as error:
        if metadata.get("input_kind") == "image":
            raise ValueError(f"{path}: {error}") from None
        raise ValueError(f"{path} carries no input kind or palette (no project metadata), so the app "
                         f"cannot tell what to draw for it; add them with: "
                         f"{how_to_add_metadata(path)}") from None


def model_resolution(metadata: Dict[str, Any], path: str = "the model") -> Tuple[int, int]:
    """(height, width) of the canvas for a model: its metadata ``resolution`` (default 256x256),
    bounded like the exporter's dynamic sizes, so a file claiming 100000x100000 cannot make the
    app allocate gigabytes. ValueError naming the file otherwise."""
    value = metadata.get("resolution") or (256, 256)
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: metadata resolution {value!r} is not [height, width]") from None
    if not (1 <= height <= MAX_MODEL_SIDE and 1 <= width <= MAX_MODEL_SIDE):
        raise ValueError(f"{path}: metadata resolution {height}x{width} is outside 1..{MAX_MODEL_SIDE} "
                         "pixels per side; re-export the model at its real size (python -m export.onnx "
                         "--size HxW)")
    return height, width


def is_placeholder(metadata: Dict[str, Any]) -> bool:
    return bool(metadata.get("placeholder"))


def is_untrained(metadata: Dict[str, Any]) -> bool:
    """Placeholders and ``export.onnx random`` models: random weights, real latency only."""
    return is_placeholder(metadata) or bool(metadata.get("random_weights"))


def samples_for(metadata: Dict[str, Any], kind: str) -> List[str]:
    """Sample files for "random sample": assets/samples/<palette> for label models; for sketch
    models assets/samples/<dataset> when it exists, else assets/samples/edges2shoes."""
    if kind == "label":
        folders = [metadata.get("palette")]
    else:
        folders = [metadata.get("dataset"), "edges2shoes"]
    for folder in folders:
        directory = os.path.join(SAMPLES_DIR, str(folder))
        if folder and os.path.isdir(directory):
            return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                          if name.lower().endswith((".png", ".jpg", ".jpeg")))
    return []

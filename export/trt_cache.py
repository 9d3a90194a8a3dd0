"""Where TensorRT engines, timing caches and calibration tables live, and when they are stale.

A serialized engine only runs on the GPU model and the TensorRT version that built it, so every
engine is cached under a key of (TensorRT version, GPU name and SM, precision, profile shapes,
DLA core, ONNX sha256) as ``<cache>/<onnx stem>-<key hash>.engine`` next to a JSON sidecar
``<same>.engine.json``. The sidecar is the small contract with the runner: its path and reader
(`sidecar_path`, `read_sidecar`) live in `engines.tensorrt_engine`, which never imports export::

    {"format": "gan-compression-trt-engine/1",
     "metadata": {...},            # the ONNX metadata_props "gan_compression" JSON (arch, palette...)
     "onnx": "/abs/model.onnx", "onnx_sha256": "...",
     "trt_version": "8.5.2.2", "gpu": "Xavier (sm_72)", "precision": "fp16", "dla_core": null,
     "shapes": {"input": [[1,3,256,256], [1,3,256,256], [1,3,256,256]]},   # min, opt, max
     "key": "<16 hex>", "build_seconds": 41.2, "built_at": "2026-11-25T12:00:00", ...}

Timing caches are keyed by (TensorRT version, GPU) only: their entries are per-layer tactic
timings, so one file serves every model and speeds up every later build on that machine.
Everything is written atomically (temp file + rename), so a crash never leaves half an engine.
This module needs neither TensorRT nor torch: the GPU name comes from the CUDA driver by ctypes.
"""
import ctypes
import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from compress.common.atomic import atomic_write_bytes  # re-exported: the engine, table and cache writer
from engines.cuda_buffers import load_libcuda as _load_libcuda  # module-level: tests replace it

SIDECAR_FORMAT = "gan-compression-trt-engine/1"
# Bump when the build recipe changes in a way that makes old engines wrong (not just slower).
RECIPE_VERSION = 1

# (min, opt, max) NCHW shape of each input tensor of an optimization profile.
ProfileShapes = Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]]


class GpuUnavailable(RuntimeError):
    """No usable CUDA driver/GPU: engines cannot be built or keyed on this machine."""


# ----------------------------------------------------------------------------- files

def sha256_file(path: str, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_json(path: str, obj: Any, overwrite: bool = False) -> None:
    """JSON through `compress.common.atomic` (torch-free, so the Jetson build path can use it)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), overwrite)


def default_cache_dir() -> str:
    """``$GAN_COMPRESSION_CACHE/tensorrt``, else ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    root = os.environ.get("GAN_COMPRESSION_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "gan-compression")
    return os.path.join(root, "tensorrt")


# ----------------------------------------------------------------------------- keys

def _hash_of(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def engine_key(trt_version: str, gpu: str, precision: str, shapes: ProfileShapes,
               dla_core: Optional[int], onnx_sha256: str,
               calibration_files: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Everything an engine depends on; two builds with equal keys are interchangeable. An INT8
    engine built by calibration also depends on its calibration inputs (``calibration_files``):
    other --calib-data or another --calib-count is another engine."""
    key = {"recipe": RECIPE_VERSION, "trt_version": trt_version, "gpu": gpu, "precision": precision,
           "shapes": {name: [list(s) for s in triple] for name, triple in sorted(shapes.items())},
           "dla_core": dla_core, "onnx_sha256": onnx_sha256}
    if calibration_files is not None:
        key["calibration"] = calibration_identity(calibration_files)
    return key


def calibration_identity(files: Sequence[str]) -> List[Any]:
    """The calibration inputs as the caches see them: each file's name and size, in order."""
    return [(os.path.basename(f), os.path.getsize(f)) for f in files]


def key_hash(key: Dict[str, Any]) -> str:
    return _hash_of(key)


def engine_cache_path(cache_dir: str, onnx_path: str, key: Dict[str, Any]) -> str:
    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    return os.path.join(cache_dir, f"{stem}-{key_hash(key)}.engine")


def timing_cache_path(cache_dir: str, trt_version: str, gpu: str) -> str:
    return os.path.join(cache_dir, f"timing-{_hash_of({'trt': trt_version, 'gpu': gpu})}.cache")


def calibration_cache_path(cache_dir: str, onnx_path: str, onnx_sha256: str, trt_version: str,
                           gpu: str, opt_shape: Sequence[int], files: Sequence[str]) -> str:
    """Calibration tables depend on the data and the network; tables computed on one GPU were
    reported to differ on another (NVIDIA/TensorRT#2036), so the GPU is part of the key too."""
    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    data = calibration_identity(files)
    key = {"onnx": onnx_sha256, "trt": trt_version, "gpu": gpu, "shape": list(opt_shape), "data": data}
    return os.path.join(cache_dir, f"{stem}-{_hash_of(key)}.calib")


# ----------------------------------------------------------------------------- GPU identity

_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


def gpu_identity(device_index: int = 0) -> str:
    """``"<GPU name> (sm_<major><minor>)"`` of a CUDA device, e.g. ``"Xavier (sm_72)"``.

    Read from the CUDA *driver* API (libcuda, present wherever a GPU driver is, Jetson included)
    through ctypes: no pycuda, torch or TensorRT needed, and the calls used (cuInit,
    cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute) have had a stable ABI since CUDA 4.
    """
    lib = _load_libcuda()
    if lib is None:
        raise GpuUnavailable("no CUDA driver found (libcuda.so.1): TensorRT engines need an NVIDIA "
                             "GPU with its driver installed (on Jetson, JetPack provides it)")
    status = lib.cuInit(0)
    if status != 0:
        raise GpuUnavailable(f"the CUDA driver failed to initialise (CUresult {status}); is an "
                             "NVIDIA GPU visible (nvidia-smi, CUDA_VISIBLE_DEVICES)?")
    device = ctypes.c_int()
    if lib.cuDeviceGet(ctypes.byref(device), device_index) != 0:
        raise GpuUnavailable(f"no CUDA device {device_index} (check CUDA_VISIBLE_DEVICES)")
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, device)
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
    return f"{name.value.decode(errors='replace').strip()} (sm_{major.value}{minor.value})"

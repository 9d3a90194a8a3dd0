"""INT8 calibration data for TensorRT 8.5/10: real dataset images, pre-processed like inference.

Calibration must see what the engine will see at run time, never noise, so the batches are
made from a dataset folder (e.g. ``shared/datasets/facades/256/val``) by the app's own
pre-processing, `engines.preprocess.make_preprocessor`, chosen from the model's metadata
(input kind, palette, architecture) and input channels. This module only reads files into
what the app's canvas would hold:

- label models: ``*.png`` class-id maps (palette PNGs are decoded to colours by OpenCV and
  mapped back to ids through the model's palette); the preprocessor makes the one-hot map
  (SPADE) or the palette-coloured image (pix2pix label -> photo), resized nearest;
- photo models: ``*.jpg`` photos (``*.png`` when there are none) as RGB;
- sketch models: the same, and a pix2pix "AB" pair (width = 2 x height, as in edges2shoes)
  keeps its left half, the sketch.

The same readers make the real inputs of ``export.tensorrt --compare`` and ``export.onnx
--check-image``. The calibrator copies each batch to the GPU with polygraphy's CUDA runtime
wrapper (ctypes over libcudart: no compilation, primary context, works in any thread); tests
pass a fake with the same interface. ``engines.preprocess`` (and so OpenCV) is imported only
when real data is read, so building FP16/FP32 engines needs no OpenCV.
"""
import os
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from engines.base import INPUT_NAME, InputSpec, size_multiple
from export.trt_cache import atomic_write_bytes

if TYPE_CHECKING:  # imported for real inside the functions: it needs OpenCV
    from engines.preprocess import Preprocessor

PHOTO_SUFFIXES = (".jpg", ".jpeg")


def select_calibration_files(data_dir: str, input_kind: Optional[str], count: int) -> List[str]:
    """Up to ``count`` files of the right kind from ``data_dir``, evenly spread over the sorted
    listing (deterministic, and not just the first scenes of a video-like dataset)."""
    if not os.path.isdir(data_dir):
        raise ValueError(f"--calib-data {data_dir}: no such folder; point it at real images, e.g. "
                         "shared/datasets/facades/256/val")
    if count <= 0:
        raise ValueError(f"--calib-count must be positive, got {count}")
    names = sorted(os.listdir(data_dir))
    if input_kind == "label":
        files = [n for n in names if n.lower().endswith(".png")]
        wanted = "*.png label maps"
    else:
        files = ([n for n in names if n.lower().endswith(PHOTO_SUFFIXES)]
                 or [n for n in names if n.lower().endswith(".png")])
        wanted = "*.jpg/*.png images"
    if not files:
        raise ValueError(f"--calib-data {data_dir}: no {wanted} for a model whose input kind is "
                         f"{input_kind or 'unknown (treated as image)'}")
    if count < len(files):
        files = [files[i * len(files) // count] for i in range(count)]
    return [os.path.join(data_dir, n) for n in files]


def input_preprocessor(metadata: Dict[str, Any], input_shape: Sequence[int],
                       source: str = "model") -> "Preprocessor":
    """The app's `engines.preprocess.Preprocessor` for a model with this metadata and NCHW
    ``input_shape`` (its channels and the H x W to calibrate, compare or check at)."""
    from engines.preprocess import make_preprocessor
    _, channels, height, width = (int(v) for v in input_shape)
    spec = InputSpec(INPUT_NAME, channels, height, width, size_multiple(metadata))
    try:
        return make_preprocessor(metadata, spec)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def data_kind(preprocessor: "Preprocessor") -> str:
    """Which files a preprocessor takes: "label" (class-id maps), "sketch" or "image"."""
    return "label" if preprocessor.takes_labels else preprocessor.mode


def read_canvas(path: str, preprocessor: "Preprocessor") -> np.ndarray:
    """An image file as the app's canvas would hold it for this model: class ids (H, W) for
    label models, uint8 RGB (or gray) otherwise."""
    import cv2
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # drop alpha: OpenCV gives BGRA
    if preprocessor.takes_labels:
        if image.ndim == 2:
            return image  # 8-bit class ids
        if preprocessor.palette is None:  # a palette PNG decoded to BGR, or an RGB-coloured map
            raise ValueError(f"{path}: a colour label map needs the model's palette, but its "
                             "metadata names none; re-export with --palette")
        return preprocessor.palette.to_ids(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if preprocessor.mode == "sketch" and image.shape[1] == 2 * image.shape[0]:
        image = image[:, : image.shape[1] // 2]  # pix2pix AB pair: the sketch is the left half
    return image


def load_model_input(path: str, preprocessor: "Preprocessor") -> np.ndarray:
    """One (C, H, W) float32 model input made from an image file, exactly as inference makes it."""
    canvas = read_canvas(path, preprocessor)
    try:
        return preprocessor.prepare(canvas)[0]
    except ValueError as error:  # wrong ids, dtype...: say which file
        raise ValueError(f"{path}: {error}") from None


def calibration_batches(files: Sequence[str], preprocessor: "Preprocessor",
                        batch_size: int) -> Iterator[np.ndarray]:
    """NCHW float32 batches of ``batch_size`` from ``files``; a last partial batch is dropped
    (TensorRT calibrates with full batches only)."""
    for start in range(0, len(files) - batch_size + 1, batch_size):
        yield np.stack([load_model_input(f, preprocessor) for f in files[start:start + batch_size]])


# ----------------------------------------------------------------------------- calibrator

class CudaRuntimeUnavailable(RuntimeError):
    """polygraphy (the CUDA runtime wrapper used for calibration) is missing."""


def load_cuda_runtime():
    """polygraphy's CUDA runtime module (``wrapper()``, ``MemcpyKind``), or a how-to error."""
    try:
        from polygraphy import cuda
    except ImportError:
        raise CudaRuntimeUnavailable("INT8 calibration copies data to the GPU with polygraphy: "
                                     "pip install polygraphy (it is in requirements-gpu.txt and "
                                     "requirements-jetson.txt)") from None
    return cuda


def make_calibrator(trt, batches: Iterable[np.ndarray], batch_shape: Sequence[int], cache_path: str,
                    cuda: Any = None, progress: Optional[Callable[[int], None]] = None):
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` and caching its table at ``cache_path``.

    When the cache file exists TensorRT reads it and asks for no batches at all. ``cuda`` is
    a module like ``polygraphy.cuda`` (``wrapper()`` with malloc/memcpy/free, ``MemcpyKind``).
    ``progress(batches_used)`` is called after each batch. Call ``.free()`` after the build.
    """
    cuda = cuda if cuda is not None else load_cuda_runtime()
    shape = tuple(int(v) for v in batch_shape)
    nbytes = int(np.prod(shape)) * 4

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 bases need an explicit init
            self.batches_used = 0
            self.error: Optional[str] = None  # what went wrong inside get_batch, if anything
            self._batches = iter(batches)
            self._device_ptr: Optional[int] = None

        def get_batch_size(self) -> int:
            return shape[0]

        def get_batch(self, names, *_):
            # TensorRT's Python wrapper catches an exception raised here, prints it and takes it
            # for the end of the data: a bad image would silently give a partial INT8 table that
            # is then cached. So the error is recorded and None returned; the build raises it.
            try:
                return self._next_batch(names)
            except Exception as error:  # noqa: BLE001 - any failure must reach the build, not TensorRT
                self.error = f"{type(error).__name__}: {error}"
                return None

        def _next_batch(self, names):
            if len(names) != 1:
                raise RuntimeError(f"calibration feeds one input, the network has {list(names)}")
            batch = next(self._batches, None)
            if batch is None:
                return None  # end of data
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            if batch.shape != shape:
                raise RuntimeError(f"calibration batch of shape {batch.shape}, expected {shape}")
            runtime = cuda.wrapper()
            if self._device_ptr is None:
                self._device_ptr = runtime.malloc(nbytes)
            # A synchronous copy: ``batch`` is freed as soon as this returns.
            runtime.memcpy(self._device_ptr, batch.ctypes.data, nbytes, cuda.MemcpyKind.HostToDevice)
            self.batches_used += 1
            if progress is not None:
                progress(self.batches_used)
            return [self._device_ptr]

        def read_calibration_cache(self):
            if os.path.isfile(cache_path):
                with open(cache_path, "rb") as handle:
                    return handle.read()
            return None

        def write_calibration_cache(self, cache) -> None:
            atomic_write_bytes(cache_path, bytes(cache), overwrite=True)

        def free(self) -> None:
            if self._device_ptr is not None:
                cuda.wrapper().free(self._device_ptr)
                self._device_ptr = None

    return EntropyCalibrator()

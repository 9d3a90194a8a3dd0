"""Pre- and post-processing between what users draw or load and what a generator takes.

One place converts canvases to model inputs, shared by the app, the benchmark's end-to-end mode
and INT8 calibration, so every path feeds a model exactly the same tensors:

- a label map (uint8 class ids, H x W) becomes a one-hot map for SPADE generators
  ([1, num_classes (+1 zero instance-edge channel), H, W]) or the palette-coloured image in
  [-1, 1] for pix2pix-style label -> photo ResNets ([1, 3, H, W]);
- a sketch (white page, dark strokes, like the edges2shoes "A" images) or a photo (uint8 RGB)
  becomes [1, 3, H, W] in [-1, 1];
- a generator output becomes uint8 RGB (H, W, 3).

``make_preprocessor(engine.metadata, engine.input_spec)`` picks the conversion from the model's
metadata (input kind, palette, family) and input channels. Labels are resized with nearest
neighbour (ids must never blend); images with area (shrinking) or bilinear (enlarging)
interpolation. Only numpy and OpenCV (headless) are used: no torch on the Jetson path.
"""
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from compress.common.palettes import Palette, load_palette
from engines.base import InputSpec, model_family

MODES = ("onehot", "color", "sketch", "image")


# ----------------------------------------------------------------------------- metadata

def _palette_of(metadata: Dict[str, Any]) -> Optional[Palette]:
    name = metadata.get("palette")
    return load_palette(name) if name else None


# ----------------------------------------------------------------------------- checks

def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    """A uint8 (H, W) gray or (H, W, 3) RGB image, or ValueError."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 pixels (0..255), got dtype {image.dtype}; "
                         "convert with np.clip(x, 0, 255).astype(np.uint8)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # drop alpha: generators never saw it
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{what}: expected an (H, W) gray or (H, W, 3) RGB image, got shape "
                         f"{image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what}: empty image of shape {image.shape}")
    return image


def _check_label_map(label_map: np.ndarray, num_classes: int,
                     palette: Optional[Palette] = None) -> np.ndarray:
    """A 2-D integer map with ids in 0..num_classes-1 (and in the palette), or ValueError."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"label map: expected 2-D class ids (H, W), got shape {label_map.shape}; "
                         "a colour image goes through Palette.to_ids first")
    if not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"label map: class ids must be integers, got dtype {label_map.dtype}")
    if palette is not None:
        palette.validate(label_map)
    low, high = int(label_map.min()), int(label_map.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"label map: class ids must lie in 0..{num_classes - 1} for this model, "
                         f"got {low}..{high}; wrong palette or model?")
    return label_map


# ----------------------------------------------------------------------------- resizing

def _check_size(size: Tuple[int, int]) -> Tuple[int, int]:
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive (height, width), got {size}")
    return height, width


def resize_label_map(label_map: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of class ids to (height, width): ids never blend."""
    height, width = _check_size(size)
    label_map = np.asarray(label_map)
    if label_map.shape[:2] == (height, width):
        return label_map
    # cv2 cannot resize int64; class ids always fit uint16 (cityscapes has 35 ids).
    small = label_map.astype(np.uint16) if label_map.dtype.itemsize > 2 else label_map
    resized = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(label_map.dtype, copy=False)


def resize_image(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize a uint8 image to (height, width): area filter when shrinking (no aliasing),
    bilinear when enlarging."""
    height, width = _check_size(size)
    image = np.asarray(image)
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


# ----------------------------------------------------------------------------- conversions

def _to_unit_range(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> [1, 3, H, W] float32 in [-1, 1] (x / 127.5 - 1, as pix2pix)."""
    chw = rgb.transpose(2, 0, 1)[None].astype(np.float32)
    return np.ascontiguousarray(chw / 127.5 - 1.0, dtype=np.float32)


def image_to_tensor(image: np.ndarray) -> np.ndarray:
    """A photo, uint8 RGB (H, W, 3) or gray (H, W) -> [1, 3, H, W] float32 in [-1, 1]."""
    image = _check_image(image, "photo")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return _to_unit_range(image)


def sketch_to_tensor(sketch: np.ndarray, invert: bool = False) -> np.ndarray:
    """A sketch, uint8 gray or RGB with dark strokes on a white page (the edges2shoes "A"
    look) -> [1, 3, H, W] float32 in [-1, 1], the gray value copied to all three channels.
    ``invert=True`` accepts light strokes on a dark page."""
    sketch = _check_image(sketch, "sketch")
    gray = sketch if sketch.ndim == 2 else cv2.cvtColor(sketch, cv2.COLOR_RGB2GRAY)
    if invert:
        gray = 255 - gray
    return _to_unit_range(np.repeat(gray[:, :, None], 3, axis=2))


def label_to_onehot(label_map: np.ndarray, num_classes: int, extra_channels: int = 0,
                    palette: Optional[Palette] = None) -> np.ndarray:
    """Class ids (H, W) -> [1, num_classes + extra_channels, H, W] float32 one-hot map.

    ``extra_channels`` zero channels follow the classes (SPADE's instance-edge channel, which
    is all zero when no instance map is drawn)."""
    return _onehot(_check_label_map(label_map, num_classes, palette), num_classes, extra_channels)


def _onehot(label_map: np.ndarray, num_classes: int, extra_channels: int) -> np.ndarray:
    height, width = label_map.shape
    onehot = np.zeros((1, num_classes + extra_channels, height, width), dtype=np.float32)
    # put_along_axis sets channel ids[y, x] to 1 at each pixel without a Python loop.
    np.put_along_axis(onehot[0], label_map[None].astype(np.intp), 1.0, axis=0)
    return onehot


def label_to_color(label_map: np.ndarray, palette: Palette) -> np.ndarray:
    """Class ids (H, W) -> palette colours as [1, 3, H, W] float32 in [-1, 1] (the input of a
    pix2pix label -> photo ResNet, trained on colourised label images)."""
    label_map = _check_label_map(label_map, palette.num_classes, palette)
    return _to_unit_range(palette.lut()[label_map])


def tensor_to_image(output: np.ndarray) -> np.ndarray:
    """A generator output [1, 3, H, W] or [3, H, W] in [-1, 1] -> uint8 RGB (H, W, 3)."""
    output = np.asarray(output)
    if output.ndim == 4:
        if output.shape[0] != 1:
            raise ValueError(f"output: expected a batch of one, got shape {output.shape}")
        output = output[0]
    if output.ndim != 3 or output.shape[0] not in (1, 3):
        raise ValueError(f"output: expected [1, 3, H, W] or [3, H, W], got shape {output.shape}")
    if output.shape[0] == 1:
        output = np.repeat(output, 3, axis=0)
    pixels = (np.clip(output.transpose(1, 2, 0), -1.0, 1.0) + 1.0) * 127.5
    return np.ascontiguousarray(np.rint(pixels), dtype=np.uint8)


def output_problem(output: np.ndarray, expected_hw: Optional[Tuple[int, int]] = None) -> Optional[str]:
    """What is wrong with a generator output, in words (None when nothing is): not finite values,
    a shape other than [1, 3, H, W] / [1, 1, H, W], or a size other than ``expected_hw``."""
    output = np.asarray(output)
    if output.ndim != 4 or output.shape[0] != 1 or output.shape[1] not in (1, 3):
        return f"output shape {tuple(output.shape)}, expected [1, 3, H, W]"
    finite = np.isfinite(output)
    if not finite.all():
        return f"{1.0 - float(finite.mean()):.1%} of the output values are NaN or infinite"
    if expected_hw is not None and tuple(output.shape[2:]) != tuple(expected_hw):
        return (f"output is {output.shape[2]}x{output.shape[3]}, but the model runs at "
                f"{expected_hw[0]}x{expected_hw[1]}")
    return None


# ----------------------------------------------------------------------------- per model

class Preprocessor:
    """Converts canvases to one model's input and its outputs back to images.

    Build it with `make_preprocessor`. ``prepare(canvas)`` resizes the canvas to the model's
    resolution and converts it by ``mode``: "onehot" and "color" take a label map, "sketch"
    and "image" a uint8 picture. ``to_image(output, size)`` gives uint8 RGB at ``size``.
    """

    def __init__(self, mode: str, resolution: Tuple[int, int], num_classes: int = 0,
                 extra_channels: int = 0, palette: Optional[Palette] = None):
        if mode not in MODES:
            raise ValueError(f"unknown pre-processing mode {mode!r}; valid: {', '.join(MODES)}")
        if mode == "color" and palette is None:
            raise ValueError("colour label maps need a palette")
        self.mode = mode
        self.resolution = _check_size(resolution)
        self.num_classes = num_classes
        self.extra_channels = extra_channels
        self.palette = palette
        self._lut = palette.lut() if palette is not None else None  # ids -> RGB, built once

    @property
    def takes_labels(self) -> bool:
        return self.mode in ("onehot", "color")

    def prepare(self, canvas: np.ndarray) -> np.ndarray:
        """Canvas (label map or uint8 image, any size) -> the model's [1, C, H, W] batch."""
        if self.takes_labels:
            # Check at canvas size, before resizing can hide bad ids; convert unchecked after.
            label_map = _check_label_map(canvas, self.num_classes, self.palette)
            label_map = resize_label_map(label_map, self.resolution)
            if self.mode == "onehot":
                return _onehot(label_map, self.num_classes, self.extra_channels)
            return _to_unit_range(self._lut[label_map])
        image = resize_image(_check_image(canvas, self.mode), self.resolution)
        return sketch_to_tensor(image) if self.mode == "sketch" else image_to_tensor(image)

    __call__ = prepare

    def to_image(self, output: np.ndarray, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Model output -> uint8 RGB, resized to ``size`` (height, width) when given."""
        image = tensor_to_image(output)
        return image if size is None else resize_image(image, size)

    def __repr__(self) -> str:
        extra = f", {self.num_classes}+{self.extra_channels} classes" if self.mode == "onehot" else ""
        return f"Preprocessor({self.mode}, {self.resolution[0]}x{self.resolution[1]}{extra})"


def make_preprocessor(metadata: Dict[str, Any], input_spec: InputSpec,
                      resolution: Optional[Tuple[int, int]] = None) -> Preprocessor:
    """The pre-processing a model needs, from its metadata and input spec.

    Args:
        metadata: the engine's metadata (``input_kind``, ``palette``, ``arch``, ``resolution``).
        input_spec: the engine's input spec (channels; fixed H x W for static models).
        resolution: (height, width) for dynamic models; default the metadata's resolution.
    Returns:
        A `Preprocessor`. Raises ValueError when the metadata and channels disagree, e.g. a
        label model whose channel count fits neither one-hot nor colour input.
    """
    channels = input_spec.channels
    if not input_spec.dynamic:
        size = (int(input_spec.height), int(input_spec.width))  # type: ignore[arg-type]
    else:
        size = resolution or tuple(metadata.get("resolution") or (256, 256))  # type: ignore[assignment]
        multiple = input_spec.multiple_of
        if size[0] % multiple or size[1] % multiple:
            raise ValueError(f"resolution {size[0]}x{size[1]} is not a multiple of {multiple} "
                             f"for {metadata.get('arch', 'this model')}")
    kind = metadata.get("input_kind")
    palette = _palette_of(metadata)
    family = model_family(metadata)
    if kind is None:  # old or foreign files: infer from the channel count
        kind = "label" if (family == "spade" or channels not in (1, 3)) else "image"
    if kind == "label":
        if palette is not None and channels in (palette.num_classes, palette.num_classes + 1):
            return Preprocessor("onehot", size, palette.num_classes,
                                channels - palette.num_classes, palette)
        if channels == 3 and family != "spade":
            if palette is None:
                raise ValueError(f"{metadata.get('arch', 'model')} takes colour label maps but its "
                                 "metadata names no palette; re-export it with --palette NAME")
            return Preprocessor("color", size, palette.num_classes, palette=palette)
        if palette is None:  # one-hot without a palette: every channel is a class
            return Preprocessor("onehot", size, channels)
        raise ValueError(f"{metadata.get('arch', 'model')} has {channels} input channels, which "
                         f"fits neither one-hot '{palette.name}' labels ({palette.num_classes} or "
                         f"{palette.num_classes + 1}) nor colour labels (3); wrong palette?")
    if channels != 3:
        raise ValueError(f"input_kind {kind!r} needs a 3-channel model, this one has {channels}")
    if kind == "sketch":
        return Preprocessor("sketch", size)
    if kind == "image":
        return Preprocessor("image", size)
    raise ValueError(f"unknown input_kind {kind!r} in the metadata; valid: label, sketch, image")

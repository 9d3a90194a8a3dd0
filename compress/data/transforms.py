"""Paired geometric transforms and tensor encodings of photos and label maps.

One ``PairedTransform`` is drawn per item and then applied to *every* image of that item
(photo, label map, instance map, or the two halves of an aligned AB image), so they stay
pixel-aligned: same resize, same crop window, same flip. Photos resize with BICUBIC (the
pix2pix default), label and instance maps with NEAREST, so no invalid in-between class id can
ever appear. The random draws come from a numpy ``Generator`` that the dataset derives from
(seed, epoch, index): an item's augmentation never depends on worker count or batch order.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from compress.common.palettes import Palette

Size = Union[int, Sequence[int], None]
INPUT_ENCODINGS = ("color", "onehot")


def as_hw(size: Size, name: str) -> Optional[Tuple[int, int]]:
    """``None`` -> None, ``256`` -> (256, 256), ``(256, 512)`` -> (256, 512) as (height, width)."""
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be a positive int (square) or (height, width), got {size}")
    return size  # type: ignore[return-value]


@dataclass(frozen=True)
class PairedTransform:
    """Resize to ``resize_hw`` (None = keep), crop ``crop_hw`` at (top, left), then maybe flip."""

    resize_hw: Optional[Tuple[int, int]]
    crop_box: Optional[Tuple[int, int, int, int]]  # top, left, height, width
    flip: bool

    def photo(self, image: Image.Image) -> np.ndarray:
        """RGB Pillow image -> transformed (H, W, 3) uint8."""
        if self.resize_hw is not None and image.size != (self.resize_hw[1], self.resize_hw[0]):
            image = image.resize((self.resize_hw[1], self.resize_hw[0]), Image.BICUBIC)
        return self._crop_flip(np.asarray(image))

    def ids(self, ids: np.ndarray) -> np.ndarray:
        """(H, W) int class or instance ids -> transformed ids (NEAREST: values never mix)."""
        if self.resize_hw is not None and ids.shape != self.resize_hw:
            image = Image.fromarray(ids.astype(np.int32))  # mode "I"
            ids = np.asarray(image.resize((self.resize_hw[1], self.resize_hw[0]), Image.NEAREST))
        return self._crop_flip(ids.astype(np.int32))

    def _crop_flip(self, array: np.ndarray) -> np.ndarray:
        if self.crop_box is not None:
            top, left, height, width = self.crop_box
            array = array[top:top + height, left:left + width]
        if self.flip:
            array = array[:, ::-1]
        return np.ascontiguousarray(array)


def draw_transform(image_hw: Tuple[int, int], load_hw: Optional[Tuple[int, int]],
                   crop_hw: Optional[Tuple[int, int]], random_crop: bool, flip: bool,
                   rng: np.random.Generator, source: str = "") -> PairedTransform:
    """pix2pix "resize_and_crop": resize to ``load_hw``, then a ``crop_hw`` window (random when
    ``random_crop``, centred otherwise), then a horizontal flip with probability 1/2 if ``flip``."""
    loaded = load_hw or image_hw
    crop_box = None
    if crop_hw is not None and crop_hw != loaded:
        if crop_hw[0] > loaded[0] or crop_hw[1] > loaded[1]:
            raise ValueError(f"{source}: crop_size {crop_hw} is larger than the loaded image {loaded} "
                             "(height, width); set load_size >= crop_size")
        if random_crop:
            top = int(rng.integers(0, loaded[0] - crop_hw[0] + 1))
            left = int(rng.integers(0, loaded[1] - crop_hw[1] + 1))
        else:
            top, left = (loaded[0] - crop_hw[0]) // 2, (loaded[1] - crop_hw[1]) // 2
        crop_box = (top, left, crop_hw[0], crop_hw[1])
    do_flip = bool(flip and rng.random() < 0.5)
    return PairedTransform(resize_hw=load_hw, crop_box=crop_box, flip=do_flip)


def photo_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float().div_(127.5).sub_(1.0)


def instance_edges(instance: np.ndarray) -> np.ndarray:
    """GauGAN's instance boundary map: 1 where a pixel's instance id differs from a 4-neighbour."""
    edge = np.zeros(instance.shape, dtype=bool)
    horizontal = instance[:, 1:] != instance[:, :-1]
    vertical = instance[1:, :] != instance[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return edge


def label_tensor(ids: np.ndarray, palette: Palette, encoding: str,
                 edges: Optional[np.ndarray] = None) -> torch.Tensor:
    """Encode (H, W) class ids as a generator input.

    "color": the palette colours as (3, H, W) in [-1, 1] (pix2pix label -> photo).
    "onehot": (num_classes [+1 edge channel], H, W) of 0/1 (SPADE / GauGAN input).
    """
    if encoding == "color":
        return photo_tensor(palette.lut()[ids])
    if encoding != "onehot":
        raise ValueError(f"input_encoding must be one of {INPUT_ENCODINGS}, got {encoding!r}")
    onehot = F.one_hot(torch.from_numpy(ids.astype(np.int64)), palette.num_classes)
    onehot = onehot.permute(2, 0, 1).float()
    if edges is not None:
        onehot = torch.cat([onehot, torch.from_numpy(edges).float()[None]], dim=0)
    return onehot

"""Reading dataset files: photos, class-id label maps, instance maps, and folder listings.

Pillow, not OpenCV, reads everything here, for two reasons: (1) label maps are 8-bit *palette*
PNGs whose pixel values are the class ids, and Pillow returns those raw indices (mode "P"),
whereas ``cv2.imread`` always expands the palette to BGR colours; (2) pix2pix / CycleGAN /
GauGAN resize with Pillow's BICUBIC (antialiased when shrinking) and NEAREST, so using Pillow
reproduces the official preprocessing exactly. Every error names the offending file.
"""
import os
from typing import List, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

from compress.common.palettes import Palette

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PHOTO_EXTENSIONS = (".jpg", ".jpeg")
LABEL_EXTENSIONS = (".png",)


def _open(path: str) -> Image.Image:
    """Open and fully decode ``path`` (a truncated file fails here, not later)."""
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: unreadable image ({error}); the file is corrupt or not an image, "
                         "replace or remove it") from None
    return image


def read_rgb(path: str) -> Image.Image:
    """An image file as an RGB Pillow image (grayscale/RGBA/palette images are converted)."""
    image = _open(path)
    return image if image.mode == "RGB" else image.convert("RGB")


def read_label(path: str, palette: Palette) -> np.ndarray:
    """A label map file as (H, W) int32 class ids, checked against ``palette``.

    Palette ("P") and grayscale ("L", "I", "I;16") PNGs hold the ids as raw pixel values and are
    read as such (never through their display colours). Colour label images (RGB, e.g. the
    pix2pix facades JPEGs) map back to ids by the nearest palette colour.
    """
    image = _open(path)
    if image.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        ids = np.asarray(image).astype(np.int32)
    elif image.mode in ("RGB", "RGBA"):
        ids = palette.to_ids(np.asarray(image.convert("RGB"))).astype(np.int32)
    else:
        raise ValueError(f"{path}: label maps must be palette/grayscale PNGs of class ids or "
                         f"colour images, got image mode {image.mode!r}")
    return palette.validate(ids, source=path)


def read_instance_map(path: str) -> np.ndarray:
    """A Cityscapes ``*_instanceIds.png`` (8/16/32-bit grayscale) as (H, W) int32 ids."""
    image = _open(path)
    if image.mode not in ("L", "I", "I;16", "I;16B", "I;16L"):
        raise ValueError(f"{path}: an instance map must be a grayscale integer PNG, got mode {image.mode!r}")
    return np.asarray(image).astype(np.int32)


def list_images(folder: str, extensions=IMAGE_EXTENSIONS, what: str = "images",
                hint: Optional[str] = None) -> List[str]:
    """Sorted image paths directly inside ``folder``; ValueError when missing or empty."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: no such folder" + (f"; {hint}" if hint else ""))
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if name.lower().endswith(tuple(extensions)) and not name.startswith("."))
    if not paths:
        raise ValueError(f"{folder}: no {what} ({'/'.join(extensions)}) in this folder"
                         + (f"; {hint}" if hint else ""))
    return paths


def stem_of(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]

"""numpy <-> QImage conversion and the app's image files (label maps, sketches, outputs).

Label maps are written as palette PNGs whose pixel values are the class ids and whose palette
holds the class colours: any viewer shows the colours, any loader gets the ids. Reading accepts
such id PNGs (palette or 8-bit gray) and colour images, which are snapped to the nearest palette
colour. QImage does the PNG work, so the app needs no extra imaging library; QImage (unlike
QPixmap) may be used on any thread. Writes are atomic (temp file + rename).
"""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QImage, QPainter, qRgb

from compress.common.palettes import Palette
from engines.preprocess import resize_image, resize_label_map

# Qt flags combine with |, which vermin mistakes for a 3.10 union type: hence novermin.
CAPTION_ALIGNMENT = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop  # novermin
CAPTION_FLAGS = int(CAPTION_ALIGNMENT.value) | int(Qt.TextFlag.TextWordWrap.value)  # wrap, never clip
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp)"


# ----------------------------------------------------------------------------- conversion

def numpy_to_qimage(pixels: np.ndarray) -> QImage:
    """uint8 (H, W) gray or (H, W, 3) RGB -> a QImage that owns a copy of the pixels."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        height, width = pixels.shape
        image = QImage(pixels.data, width, height, width, QImage.Format.Format_Grayscale8)
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        height, width = pixels.shape[:2]
        image = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    else:
        raise ValueError(f"expected uint8 (H, W) or (H, W, 3) pixels, got shape {pixels.shape}")
    return image.copy()  # the QImage above borrows numpy's buffer; the copy owns its memory


def _rows(image: QImage, channels: int) -> np.ndarray:
    """The pixel rows of ``image`` as (H, W, channels) uint8, without the line padding."""
    pointer = image.constBits()
    pointer.setsize(image.sizeInBytes())
    rows = np.frombuffer(pointer, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * channels].reshape(image.height(), image.width(), channels).copy()


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """Any QImage -> uint8 (H, W, 3) RGB."""
    return _rows(image.convertToFormat(QImage.Format.Format_RGB888), 3)


def qimage_indices(image: QImage) -> np.ndarray:
    """Pixel values of an 8-bit palette or gray QImage as uint8 (H, W)."""
    if image.format() not in (QImage.Format.Format_Indexed8, QImage.Format.Format_Grayscale8):
        raise ValueError(f"not an 8-bit indexed or gray image (format {image.format().name})")
    return _rows(image, 1)[:, :, 0]


# ----------------------------------------------------------------------------- reading

def _read(path: str) -> QImage:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such image file: {os.path.abspath(path)}")
    image = QImage(path)
    if image.isNull():
        raise ValueError(f"{path}: not a readable image (PNG, JPEG or BMP expected)")
    return image


# A pixel farther than this (RGB distance) from every class colour matches no class; JPEG noise on
# a colour label map stays far below it.
OFF_PALETTE_DISTANCE = 48.0
MAX_OFF_PALETTE_SHARE = 0.2   # more than this and the file is a photo or a sketch, not a label map
MIN_PAPER_SHARE = 0.5         # a sketch is dark strokes on mostly light paper


def read_label_map(path: str, palette: Palette, size: Tuple[int, int]) -> np.ndarray:
    """A label map file -> uint8 class ids of ``size`` (height, width), nearest-resized.

    Palette PNGs and 8-bit gray PNGs are read as ids (their pixel values); any other image is
    treated as colours and snapped to the nearest palette colour, after a nearest-neighbour
    resize (exact, and it keeps a huge file's memory small). Raises ValueError naming the file
    when ids fall outside the palette, or when the file is a photo or a sketch rather than a map.
    """
    image = _read(path)
    if image.format() in (QImage.Format.Format_Indexed8, QImage.Format.Format_Grayscale8):
        ids = resize_label_map(qimage_indices(image), size)
        if ids.max() >= palette.num_classes and (ids >= 128).mean() > MIN_PAPER_SHARE:
            raise ValueError(f"{path} is a light gray image (a sketch?), not a '{palette.name}' label "
                             "map; switch to a sketch model (Model > Pair) to draw on it")
        return palette.validate(ids, source=path)
    ids, distance = palette.nearest(resize_label_map(qimage_to_rgb(image), size))
    off_palette = float((distance > OFF_PALETTE_DISTANCE).mean())
    if off_palette > MAX_OFF_PALETTE_SHARE:
        raise ValueError(f"{path}: {off_palette:.0%} of its pixels match no '{palette.name}' class colour, "
                         "so it is a photo or a sketch, not a label map; open a class-id PNG or an image "
                         f"painted in the palette's colours (assets/palettes/{palette.name}.json)")
    return ids


def read_sketch(path: str, size: Tuple[int, int]) -> np.ndarray:
    """A sketch or edge image -> uint8 gray (height, width), dark strokes on white.

    Paired pix2pix files (A|B side by side, twice as wide as high) keep only the left half.
    Raises ValueError naming the file for a label map (a palette PNG, or a mostly dark image):
    the sketch models were trained on black lines on white paper.
    """
    image = _read(path)
    if image.format() == QImage.Format.Format_Indexed8 and not image.allGray():
        raise ValueError(f"{path} is a palette (class-id) PNG, i.e. a label map, not a sketch; switch to "
                         "a label-map model (Model > Pair) to open it")
    gray = qimage_indices(image.convertToFormat(QImage.Format.Format_Grayscale8))
    if gray.shape[1] == 2 * gray.shape[0]:
        gray = gray[:, :gray.shape[0]]
    gray = resize_image(gray, size)
    if (gray >= 128).mean() < MIN_PAPER_SHARE:
        raise ValueError(f"{path} is mostly dark ({(gray < 128).mean():.0%} of its pixels), but a sketch is "
                         "dark lines on white paper; a label map or a photo cannot be drawn on here "
                         "(invert white-on-black edges first)")
    return gray


# ----------------------------------------------------------------------------- writing

def _save_atomic(image: QImage, path: str) -> None:
    """Save ``image`` (format from the extension) atomically (`compress.common.atomic`: temp file and
    rename; an unwritable place is one OSError line naming ``path``)."""
    from compress.common.atomic import atomic_write

    def write(temp: str) -> None:  # the temp name ends with the target's name: same extension
        if not image.save(temp):
            raise OSError(f"could not write {path}; check the extension (.png, .jpg)")
    atomic_write(path, write, overwrite=True)


def label_map_qimage(ids: np.ndarray, palette: Palette) -> QImage:
    """Class ids -> an 8-bit palette QImage (pixel values = ids, palette = class colours)."""
    palette.validate(ids)
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    height, width = ids.shape
    image = QImage(ids.data, width, height, width, QImage.Format.Format_Indexed8).copy()
    # 256 entries: unused ids get a colour that no class has; a full table also keeps Qt from
    # writing a gray PNG when the first colours happen to be gray levels.
    table = [qRgb(255, 0, 255)] * 256
    for class_id, (red, green, blue) in zip(palette.ids, palette.colors):
        table[class_id] = qRgb(red, green, blue)
    image.setColorTable(table)
    return image


def write_label_map(path: str, ids: np.ndarray, palette: Palette) -> None:
    """Save class ids as a palette PNG (ids as pixel values, class colours as palette)."""
    if not path.lower().endswith(".png"):
        raise ValueError(f"{path}: label maps are saved as .png (lossless ids); JPEG would "
                         "blend neighbouring class ids")
    _save_atomic(label_map_qimage(ids, palette), path)


def write_image(path: str, image: QImage) -> None:
    """Save a QImage (an output or a composite) atomically."""
    if image.isNull():
        raise ValueError(f"{path}: nothing to save yet (no output has been rendered)")
    _save_atomic(image, path)


def composite(images: Sequence[Optional[QImage]], titles: Sequence[str], height: int = 256,
              gap: int = 8) -> QImage:
    """Images side by side at ``height`` px with a caption strip under each (missing images
    are left gray): the "input | original | compressed" figure of the File menu."""
    caption = 54  # three lines of wrapped text: name, backend and model, latency
    widths: List[int] = []
    for image in images:
        aspect = image.width() / image.height() if image is not None and not image.isNull() else 1.0
        widths.append(int(round(height * aspect)))
    total = sum(widths) + gap * (len(widths) + 1)
    sheet = QImage(total, height + caption + 2 * gap, QImage.Format.Format_RGB888)
    sheet.fill(QColor(250, 250, 250))
    painter = QPainter(sheet)
    left = gap
    for image, title, width in zip(images, titles, widths):
        if image is None or image.isNull():
            painter.fillRect(left, gap, width, height, QColor(200, 200, 200))
        else:
            painter.drawImage(left, gap, image.scaled(width, height))
        painter.setPen(QColor(30, 30, 30))
        painter.drawText(QRectF(left + 2, gap + height + 4, width - 4, caption), CAPTION_FLAGS, title)
        left += width + gap
    painter.end()
    return sheet

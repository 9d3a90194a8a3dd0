"""Drawing tools as pure functions on a uint8 map at model resolution (no Qt, testable).

The canvas stores what the model consumes: one uint8 value per model pixel (a class id in label
mode, a gray level in sketch mode). Every tool writes ``value`` into ``canvas`` in place and
returns whether any pixel changed, so the caller can skip an undo step or a render when nothing
happened. Points are (x, y) floats in model pixels (pixel centres at integer coordinates), as the
canvas maps them from the mouse; sizes are in model pixels too.
"""
from typing import Tuple

import cv2
import numpy as np

Point = Tuple[float, float]

MIN_BRUSH_PX, MAX_BRUSH_PX = 1, 64  # brush diameter range in model pixels


def _check_canvas(canvas: np.ndarray) -> None:
    if canvas.ndim != 2 or canvas.dtype != np.uint8:
        raise ValueError(f"canvas must be a 2-D uint8 map, got {canvas.dtype} {canvas.shape}")


def _write(region: np.ndarray, mask: np.ndarray, value: int) -> bool:
    """Set ``region[mask] = value``; True when a pixel changed."""
    changed = bool(np.any(region[mask] != value))
    if changed:
        region[mask] = value
    return changed


def paint_segment(canvas: np.ndarray, start: Point, end: Point, diameter: float, value: int) -> bool:
    """Paint a round-capped stroke (a capsule) from ``start`` to ``end``.

    A pixel is painted when its centre lies within ``diameter / 2`` of the segment; a diameter
    of 1 paints a one-pixel-wide line. A single click is ``start == end`` (a disc). The distance
    is computed only inside the stroke's bounding box, so a long stroke costs little.
    """
    _check_canvas(canvas)
    radius = max(float(diameter), 1.0) / 2.0
    height, width = canvas.shape
    (x0, y0), (x1, y1) = start, end
    left = max(int(np.floor(min(x0, x1) - radius)), 0)
    right = min(int(np.ceil(max(x0, x1) + radius)), width - 1)
    top = max(int(np.floor(min(y0, y1) - radius)), 0)
    bottom = min(int(np.ceil(max(y0, y1) + radius)), height - 1)
    if left > right or top > bottom:
        return False  # entirely outside the canvas
    ys, xs = np.mgrid[top:bottom + 1, left:right + 1].astype(np.float32)
    dx, dy = x1 - x0, y1 - y0
    length_sq = dx * dx + dy * dy
    if length_sq > 0:  # project every pixel centre onto the segment, clamped to its ends
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length_sq, 0.0, 1.0)
        near_x, near_y = x0 + t * dx, y0 + t * dy
    else:
        near_x, near_y = x0, y0
    mask = (xs - near_x) ** 2 + (ys - near_y) ** 2 <= radius * radius
    return _write(canvas[top:bottom + 1, left:right + 1], mask, value)


def fill_rectangle(canvas: np.ndarray, corner: Point, opposite: Point, value: int) -> bool:
    """Fill the axis-aligned rectangle spanned by two corners (both inclusive)."""
    _check_canvas(canvas)
    height, width = canvas.shape
    (x0, y0), (x1, y1) = corner, opposite
    left, right = sorted((int(round(x0)), int(round(x1))))
    top, bottom = sorted((int(round(y0)), int(round(y1))))
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, width - 1), min(bottom, height - 1)
    if left > right or top > bottom:
        return False
    region = canvas[top:bottom + 1, left:right + 1]
    return _write(region, np.ones(region.shape, dtype=bool), value)


def flood_fill(canvas: np.ndarray, seed: Point, value: int) -> bool:
    """Replace the 4-connected region of equal values around ``seed`` with ``value``
    (a fill bucket: exact, no tolerance, since neighbouring class ids are unrelated)."""
    _check_canvas(canvas)
    height, width = canvas.shape
    x, y = int(round(seed[0])), int(round(seed[1]))
    if not (0 <= x < width and 0 <= y < height) or canvas[y, x] == value:
        return False
    # cv2.floodFill wants a mask 2 px larger than the image; flag 4 = 4-connectivity.
    mask = np.zeros((height + 2, width + 2), dtype=np.uint8)
    cv2.floodFill(canvas, mask, (x, y), int(value), loDiff=0, upDiff=0, flags=4)
    return True


def clear(canvas: np.ndarray, value: int) -> bool:
    """Set the whole canvas to ``value`` (the background class, or white paper)."""
    _check_canvas(canvas)
    return _write(canvas, np.ones(canvas.shape, dtype=bool), value)


def clamp_brush(diameter: float) -> int:
    """A brush diameter within the supported range, in whole model pixels."""
    return int(min(max(round(diameter), MIN_BRUSH_PX), MAX_BRUSH_PX))

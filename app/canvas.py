"""CanvasWidget: turns mouse input into tool operations on the LabelMap and shows it.

The map lives at model resolution; the widget scales it up (nearest neighbour, so class borders
stay crisp) and maps mouse positions back to model pixels. It colourises the map only to
display it. Edits emit ``edited`` (the window throttles renders from it) and a mouse release
emits ``strokeFinished`` (the window renders at once). Left button: the current tool; right
button: erase with the brush (background class / white paper), as in the official demo.
"""
from typing import Callable, Optional, Tuple

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

from app import tools
from app.image_io import numpy_to_qimage
from app.label_map import LabelMap

TOOLS = ("brush", "eraser", "fill", "rectangle", "line")
Colorizer = Callable[[np.ndarray], np.ndarray]  # uint8 map -> uint8 RGB or gray for display


class CanvasWidget(QWidget):
    """The drawing surface. ``value`` is what the brush paints (a class id or ink gray),
    ``erase_value`` what the eraser paints (the background class or white)."""

    edited = pyqtSignal()
    strokeFinished = pyqtSignal()
    brushSizeChanged = pyqtSignal(int)
    hovered = pyqtSignal(int, int, int)  # model x, y and the value under the cursor

    def __init__(self, label_map: LabelMap, colorize: Colorizer, value: int, erase_value: int,
                 parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.label_map = label_map
        self.colorize = colorize
        self.value = int(value)
        self.erase_value = int(erase_value)
        self.tool = "brush"
        self.brush_px = 8
        self._stroke_value: Optional[int] = None  # value of the stroke in progress
        self._stroke_tool = "brush"
        self._anchor: Optional[Tuple[float, float]] = None  # stroke start (rectangle, line)
        self._last: Optional[Tuple[float, float]] = None  # previous brush position
        self._cursor: Optional[QPointF] = None
        self._image: Optional[QImage] = None
        self._image_version = -1
        self.setMouseTracking(True)  # hover: brush outline and status-bar readout
        self.setMinimumSize(QSize(256, 256))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -- settings ----------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; valid: {', '.join(TOOLS)}")
        self.tool = tool

    def set_value(self, value: int) -> None:
        self.value = int(value)

    def set_brush_size(self, diameter_px: int) -> None:
        size = tools.clamp_brush(diameter_px)
        if size != self.brush_px:
            self.brush_px = size
            self.brushSizeChanged.emit(size)
            self.update()

    def refresh(self) -> None:
        """Repaint after the map changed outside a stroke (undo, redo, load)."""
        self.update()

    # -- geometry ----------------------------------------------------------------------
    def map_rect(self) -> QRectF:
        """Where the map is drawn: the largest fit keeping its aspect ratio, centred
        horizontally and aligned to the top (level with the result panes)."""
        height, width = self.label_map.shape
        scale = min(self.width() / width, self.height() / height)
        return QRectF((self.width() - width * scale) / 2, 0, width * scale, height * scale)

    def scale(self) -> float:
        return self.map_rect().width() / self.label_map.shape[1]

    def to_model(self, position: QPointF) -> Tuple[float, float]:
        """Widget position -> model pixel coordinates (pixel centres at integers)."""
        rect, scale = self.map_rect(), self.scale()
        return ((position.x() - rect.left()) / scale - 0.5, (position.y() - rect.top()) / scale - 0.5)

    def to_widget(self, x: float, y: float) -> QPointF:
        """Model pixel coordinates -> widget position (the inverse of `to_model`)."""
        rect, scale = self.map_rect(), self.scale()
        return QPointF(rect.left() + (x + 0.5) * scale, rect.top() + (y + 0.5) * scale)

    # -- tool application (also the programmatic drawing API of tests and screenshots) ---
    def press(self, point: Tuple[float, float], tool: Optional[str] = None,
              value: Optional[int] = None) -> None:
        """Start a stroke at ``point`` (model pixels) with ``tool`` and ``value``."""
        self._stroke_tool = tool or self.tool
        if value is None:
            value = self.erase_value if self._stroke_tool == "eraser" else self.value
        self._stroke_value = int(value)
        self._anchor = self._last = point
        self.label_map.begin_stroke()
        if self._stroke_tool in ("brush", "eraser"):
            self._apply(tools.paint_segment(self.label_map.ids, point, point, self.brush_px,
                                            self._stroke_value))
        elif self._stroke_tool == "fill":
            self._apply(tools.flood_fill(self.label_map.ids, point, self._stroke_value))
        else:
            self.drag(point)

    def drag(self, point: Tuple[float, float]) -> None:
        """Continue the stroke to ``point``."""
        if self._stroke_value is None or self._anchor is None or self._last is None:
            return
        ids, value = self.label_map.ids, self._stroke_value
        if self._stroke_tool in ("brush", "eraser"):
            self._apply(tools.paint_segment(ids, self._last, point, self.brush_px, value))
        elif self._stroke_tool == "rectangle":  # preview: redraw from the stroke's start
            restored = self.label_map.restore_stroke_start()
            self._apply(tools.fill_rectangle(self.label_map.ids, self._anchor, point, value) or restored)
        elif self._stroke_tool == "line":
            restored = self.label_map.restore_stroke_start()
            self._apply(tools.paint_segment(self.label_map.ids, self._anchor, point, self.brush_px,
                                            value) or restored)
        self._last = point

    def release(self) -> bool:
        """Finish the stroke; returns whether it changed the map."""
        if self._stroke_value is None:
            return False
        self._stroke_value = self._anchor = self._last = None
        changed = self.label_map.end_stroke()
        self.update()
        self.strokeFinished.emit()
        return changed

    def stroke(self, points, tool: Optional[str] = None, value: Optional[int] = None) -> bool:
        """A whole stroke through ``points`` (model pixels): press, drags, release."""
        points = list(points)
        self.press(points[0], tool, value)
        for point in points[1:]:
            self.drag(point)
        return self.release()

    def _apply(self, changed: bool) -> None:
        if changed:
            self.label_map.mark_changed()
            self.update()
            self.edited.emit()

    # -- Qt events ------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        point = self.to_model(event.position())
        if event.button() == Qt.MouseButton.LeftButton:
            self.press(point)
        elif event.button() == Qt.MouseButton.RightButton:
            self.press(point, tool="eraser")

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._cursor = event.position()
        point = self.to_model(event.position())
        if self._stroke_value is not None:
            self.drag(point)
        else:
            self.update()  # the brush outline follows the cursor
        x, y = int(round(point[0])), int(round(point[1]))
        height, width = self.label_map.shape
        if 0 <= x < width and 0 <= y < height:
            self.hovered.emit(x, y, int(self.label_map.ids[y, x]))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self.release()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0  # one notch = 120
        if steps:
            # multiplicative steps feel even from 1 px to 64 px; at least one pixel per notch
            factor = 1.15 ** steps
            target = self.brush_px * factor
            if abs(target - self.brush_px) < 1:
                target = self.brush_px + (1 if steps > 0 else -1)
            self.set_brush_size(int(round(target)))
        event.accept()

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._cursor = None
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        if self._image is None or self._image_version != self.label_map.version:
            self._image = numpy_to_qimage(self.colorize(self.label_map.ids))
            self._image_version = self.label_map.version
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        rect = self.map_rect()
        painter.drawImage(rect, self._image)  # no smoothing: class borders stay crisp
        if self._cursor is not None and self.tool in ("brush", "eraser", "line"):
            radius = self.brush_px * self.scale() / 2
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(QColor(255, 255, 255, 220), 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(self._cursor, radius, radius)
            painter.setPen(QPen(QColor(0, 0, 0, 160), 1.0))
            painter.drawEllipse(self._cursor, radius + 1.5, radius + 1.5)
        painter.end()

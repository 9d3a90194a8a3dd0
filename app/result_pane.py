"""ResultPane: one generator's output with a legible overlay of how it was produced and how fast.

The pane can instead show the difference view: a heat map of |original − compressed| with its
PSNR (computed by the window with `app.difference`), for the request both panes rendered.
The overlay shows the backend and device, the latency as an exponential moving average (so the
number is readable while drawing), the frame rate that latency allows, and the model's MACs and
parameters from its metadata. These are live figures of the app's own path (pre-process,
inference, post-process); the Benchmark menu measures latency properly (warm-up, many runs).
"""
import time
from collections import deque
from typing import Any, Deque, Dict, Optional

from PyQt6.QtCore import QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

from engines.bench_results import human_count

# Qt flags combine with |, which vermin mistakes for a 3.10 union type: hence novermin.
TEXT_ALIGNMENT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter  # novermin
EMA_WEIGHT = 0.2  # weight of the newest sample: about the last 5 frames dominate
FPS_WINDOW_S = 2.0  # frames shown per second are counted over this window
STALE_NOTE = "\u23f8 stale: the canvas changed (Ctrl+Return renders)"


class LatencyEma:
    """Exponential moving average of latency samples in ms (the first sample initialises it)."""

    def __init__(self, weight: float = EMA_WEIGHT):
        if not 0 < weight <= 1:
            raise ValueError(f"EMA weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.value_ms: Optional[float] = None

    def add(self, sample_ms: float) -> float:
        if self.value_ms is None:
            self.value_ms = float(sample_ms)
        else:
            self.value_ms += self.weight * (float(sample_ms) - self.value_ms)
        return self.value_ms

    def reset(self) -> None:
        self.value_ms = None


class ResultPane(QWidget):
    """Shows the newest output of one worker, scaled to fit, with the overlay on top.

    ``frameShown(request_id, shown_s)`` is emitted from ``paintEvent`` the first time a frame is
    actually painted (``shown_s`` a time.perf_counter() stamp): the end of "stroke to pixels".
    """

    frameShown = pyqtSignal(int, float)

    def __init__(self, title: str, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.title = title  # shown by the window's caption above the pane
        self.image: Optional[QImage] = None
        self.request_id = -1
        self._announced_id = -1
        self.info: Dict[str, Any] = {}
        self.status = "loading model..."
        self.problem: Optional[str] = None  # what is wrong with the last output (NaN, size), if anything
        self.stale = False  # live rendering off and the canvas changed since this output
        self.stale_note = STALE_NOTE  # why it is stale (manual rendering, or renders on release)
        self.show_difference = False  # paint the difference heat map instead of the output
        self.difference: Optional[QImage] = None
        self.difference_psnr_db: Optional[float] = None
        self.difference_id = -1  # the request the heat map belongs to
        self.blank = False  # the last frame stands for a blank canvas (see app.inference_worker)
        self._arrivals: Deque[float] = deque()  # perf_counter() stamps of recent frames
        self.infer_ema, self.total_ema = LatencyEma(), LatencyEma()
        self.frames = 0
        self.setMinimumSize(QSize(200, 200))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # we paint every pixel

    # -- state from the worker -------------------------------------------------------------
    def set_engine_info(self, info: Dict[str, Any]) -> None:
        """The worker opened its engine: remember what to show in the overlay."""
        self.info = dict(info)
        self.status = ""
        self.infer_ema.reset()
        self.total_ema.reset()
        self.update()

    def set_status(self, text: str) -> None:
        """A message instead of latency figures (loading, errors)."""
        self.status = text
        self.update()

    def show_result(self, request_id: int, image: QImage, timings: Dict[str, float]) -> None:
        """A rendered frame arrived; ignored when an older request overtakes a newer one."""
        if request_id < self.request_id:
            return
        self.request_id = request_id
        self.image = image
        self.problem = timings.get("problem")  # NaN / wrong-size outputs are flagged, not hidden
        self.blank = bool(timings.get("blank"))  # a blank canvas: nothing was inferred
        self.stale = False
        if self.blank:
            self.update()
            return  # no latency sample: nothing ran
        self._arrivals.append(time.perf_counter())
        self.infer_ema.add(timings["infer_ms"])
        self.total_ema.add(timings["total_ms"])
        self.frames += 1
        self.update()

    def set_stale(self, stale: bool, note: str = STALE_NOTE) -> None:
        """Mark the output as behind the canvas; ``note`` says why (shown in the overlay)."""
        if stale != self.stale or note != self.stale_note:
            self.stale, self.stale_note = stale, note
            self.update()

    def set_difference(self, request_id: int, image: Optional[QImage], psnr_db: Optional[float]) -> None:
        """The heat map of |original − compressed| for ``request_id`` (None: no difference yet)."""
        self.difference, self.difference_psnr_db, self.difference_id = image, psnr_db, request_id
        if self.show_difference:
            self.update()

    def set_show_difference(self, show: bool) -> None:
        self.show_difference = bool(show)
        self.update()

    def clear_result(self) -> None:
        self.image, self.request_id, self._announced_id, self.problem = None, -1, -1, None
        self.update()

    # -- overlay text ----------------------------------------------------------------------
    def overlay_lines(self):
        """The overlay's lines (also used by tests and the screenshot)."""
        lines = []
        if self.info:
            meta = self.info.get("metadata", {})
            lines.append(f"{self.info.get('backend', '?')} on {self.info.get('device', '?')}"
                         f" \u00b7 {meta.get('arch', '?')}")
            measured = meta.get("latency_ms")  # a ladder rung's benchmark, when it carries one
            lines.append(f"MACs {human_count(meta.get('macs'), '?')} \u00b7 "
                         f"params {human_count(meta.get('params'), '?')}"
                         + (f" \u00b7 bench {measured:.1f} ms" if isinstance(measured, (int, float)) else ""))
        if self.problem:
            lines.append(f"\u26a0 bad output: {self.problem}")
        if self.stale and self.image is not None:
            lines.append(self.stale_note)
        if self.show_difference:
            lines.append(self.difference_line())
        if self.blank and not self.status:
            lines.append("blank canvas: draw to render")
        elif self.status:
            lines.append(self.status)
        elif self.total_ema.value_ms is not None:
            lines.append(f"{self.total_ema.value_ms:.1f} ms (EMA) \u00b7 infer "
                         f"{self.infer_ema.value_ms:.1f} ms \u00b7 {self.shown_fps():.1f} frames/s shown")
        return lines

    def difference_line(self) -> str:
        if self.difference is None:
            return "difference: waiting for both panes to render one request"
        psnr = self.difference_psnr_db
        figure = "identical" if psnr is None or psnr == float("inf") else f"PSNR {psnr:.1f} dB"
        behind = "" if self.difference_id == self.request_id else " (of an earlier request)"
        return f"|original \u2212 compressed| \u00b7 {figure}{behind}"

    def shown_fps(self, now_s: Optional[float] = None) -> float:
        """Frames that actually arrived per second over the last FPS_WINDOW_S seconds (0 while
        idle): what the user sees, not 1000 / latency."""
        now_s = time.perf_counter() if now_s is None else now_s
        while self._arrivals and now_s - self._arrivals[0] > FPS_WINDOW_S:
            self._arrivals.popleft()
        return len(self._arrivals) / FPS_WINDOW_S

    # -- painting ----------------------------------------------------------------------------
    def image_rect(self) -> QRectF:
        """Where the image goes: the largest fit keeping its aspect, centred horizontally and
        aligned to the top (level with the canvas beside it)."""
        if self.image is None or self.image.isNull():
            image_width, image_height = 1, 1
        else:
            image_width, image_height = self.image.width(), self.image.height()
        scale = min(self.width() / image_width, self.height() / image_height)
        width, height = image_width * scale, image_height * scale
        return QRectF((self.width() - width) / 2, 0, width, height)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        target = self.image_rect()
        shown = self.difference if self.show_difference and self.difference is not None else self.image
        if shown is not None and not shown.isNull():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, shown)
        else:
            painter.fillRect(target, QColor(96, 98, 104))  # waiting for the first frame
        self._paint_overlay(painter, target)
        painter.end()
        if self.image is not None and self.request_id != self._announced_id:
            self._announced_id = self.request_id
            self.frameShown.emit(self.request_id, time.perf_counter())

    def _paint_overlay(self, painter: QPainter, target: QRectF) -> None:
        lines = self.overlay_lines()
        if not lines:
            return
        font = QFont(self.font())
        font.setPointSizeF(max(8.0, min(11.0, target.width() / 40)))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        line_height = metrics.height()
        width = max(metrics.horizontalAdvance(line) for line in lines) + 14
        box = QRectF(target.left() + 6, target.top() + 6, min(width, target.width() - 12),
                     line_height * len(lines) + 10)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 165))  # translucent: legible on any output
        painter.drawRoundedRect(box, 5, 5)
        for index, line in enumerate(lines):
            # the latency line (last) in amber: the number the comparison is about
            painter.setPen(QColor(255, 214, 102) if index == len(lines) - 1 else QColor(245, 245, 245))
            painter.drawText(QRectF(box.left() + 7, box.top() + 5 + index * line_height,
                                    box.width() - 10, line_height),
                             TEXT_ALIGNMENT, line)

"""Shared helpers of the app tests: open a window on models and wait until both panes run,
derive model files with other metadata."""
import json
from pathlib import Path

import onnx
from PyQt6.QtCore import QPoint, Qt

from app.main_window import PANES, MainWindow
from engines.base import METADATA_KEY


def open_window(qtbot, original, compressed, **kwargs) -> MainWindow:
    window = MainWindow(str(original), str(compressed), threads=1, seed=0, **kwargs)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: len(window.engine_info) == len(PANES) or bool(window.errors), timeout=30000)
    assert not window.errors
    wait_rendered(qtbot, window)
    return window


def wait_rendered(qtbot, window, timeout=20000) -> None:
    """Wait until both panes show the newest request."""
    qtbot.waitUntil(lambda: all(window.panes[n].request_id == window.request_id for n in PANES),
                    timeout=timeout)


def drag(qtbot, canvas, points, button=Qt.MouseButton.LeftButton, pause_ms=0) -> None:
    """A real mouse drag through model-pixel ``points`` on the canvas widget."""
    widget_points = [canvas.to_widget(x, y).toPoint() for x, y in points]
    qtbot.mousePress(canvas, button, pos=widget_points[0])
    for point in widget_points[1:]:
        qtbot.mouseMove(canvas, point)
        if pause_ms:
            qtbot.wait(pause_ms)
    qtbot.mouseRelease(canvas, button, pos=widget_points[-1])


def click(qtbot, canvas, x, y) -> None:
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(canvas.to_widget(x, y).toPoint()))


def with_metadata(source, target: Path, **changes) -> Path:
    """A copy of an ONNX model whose metadata has ``changes`` (None deletes a key)."""
    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            meta = json.loads(prop.value)
            meta.update(changes)
            prop.value = json.dumps({k: v for k, v in meta.items() if v is not None})
    onnx.save(model, str(target))
    return target

"""MainWindow: palette | canvas | original output | compressed output, with menus and live rendering.

Rendering: every edit of the canvas starts a ~30 ms throttle timer (not a debounce: a render goes
out every 30 ms while drawing), a mouse release renders at once, and the Live toggle switches to
manual rendering (Render button, Ctrl+Return). Each render request carries one id and a snapshot
of the map to both panes' workers, which drop stale requests themselves (see inference_worker).
Nothing here waits on inference: the GUI thread only copies the map and paints images.
"""
import os
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QActionGroup, QCloseEvent, QImage, QKeySequence, QShortcut
from PyQt6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QToolBar,
                             QVBoxLayout, QWidget)

from app import model_files
from app.benchmark_dialog import BenchmarkDialog
from app.canvas import TOOLS, CanvasWidget
from app.image_io import (IMAGE_FILTER, composite, numpy_to_qimage, read_label_map, read_sketch,
                          write_image, write_label_map)
from app.inference_worker import EngineOpener, RenderRequest, start_worker, stop_worker
from app.label_map import LabelMap
from app.palette_panel import INK, PAPER, PalettePanel, palette_swatches, sketch_swatches
from app.result_pane import ResultPane
from compress.palettes import Palette, load_palette
from engines.factory import open_engine

PANES = ("original", "compressed")
THROTTLE_MS = 30  # at most one render request per 30 ms while drawing (~33 per second)
TOOL_KEYS = {"brush": "B", "eraser": "E", "fill": "F", "rectangle": "R", "line": "L"}
DEFAULT_BRUSH_PX = {"label": 12, "sketch": 2}
REQUEST_LOG_SIZE = 4096  # request id -> (map version, time) kept for latency figures


class MainWindow(QMainWindow):
    """The demo window. ``opener`` builds engines (tests pass slow fakes); ``threads`` is the
    intra-op CPU thread count per pane (None: backend default); ``worker_nice`` lowers the
    inference threads' priority (Linux nice increment) so the GUI thread wins the cores."""

    def __init__(self, original: str, compressed: str, backend: Optional[str] = None,
                 device: Optional[str] = None, threads: Optional[int] = None,
                 opener: EngineOpener = open_engine, seed: Optional[int] = None,
                 worker_nice: int = 0):
        super().__init__()
        self.backend, self.device, self.threads = backend, device, threads
        self.paths: Dict[str, str] = {}
        self.metadata: Dict[str, Dict[str, Any]] = {}
        self.engine_info: Dict[str, Dict[str, Any]] = {}
        self.errors: List[str] = []
        self.kind = "label"
        self.palette: Optional[Palette] = None
        self.live = True
        self.request_id = 0
        self.request_log: Dict[int, Tuple[int, float]] = {}  # request id -> (map version, time)
        self._submitted_version = -1
        self._last_request: Optional[RenderRequest] = None
        self._rng = random.Random(seed)
        self._benchmark: Optional[BenchmarkDialog] = None

        self.label_map = LabelMap(256, 256, fill_value=0)
        self.canvas = CanvasWidget(self.label_map, self._colorize, value=0, erase_value=0)
        self.palette_panel = PalettePanel()
        self.panes = {name: ResultPane(name.capitalize()) for name in PANES}
        self.canvas_caption = QLabel()
        self.pane_captions = {name: QLabel(f"<b>{name.capitalize()}</b>") for name in PANES}
        self.banner = QLabel()
        self._build_layout()

        self.render_timer = QTimer(self)
        self.render_timer.setSingleShot(True)
        self.render_timer.setInterval(THROTTLE_MS)
        self.render_timer.timeout.connect(self.submit_render)
        self.canvas.edited.connect(self._on_edited)
        self.canvas.strokeFinished.connect(self._on_stroke_finished)
        self.canvas.brushSizeChanged.connect(self.palette_panel.set_brush_size)
        self.canvas.hovered.connect(self._on_hover)
        self.palette_panel.valueSelected.connect(self._on_value_selected)
        self.palette_panel.brushSizeChanged.connect(self.canvas.set_brush_size)

        self.workers = {}
        for name in PANES:
            worker, thread = start_worker(name, opener, worker_nice)
            worker.opened.connect(lambda info, n=name: self._on_opened(n, info))
            worker.failed.connect(lambda message, n=name: self._on_failed(n, message))
            worker.rendered.connect(self.panes[name].show_result)
            self.workers[name] = (worker, thread)
        self._build_actions()
        self.resize(1560, 600)
        try:
            self.open_models(original, compressed)
        except Exception:
            self.shutdown()  # the worker threads are running: stop them before giving up
            raise

    # -- layout and actions ------------------------------------------------------------------
    def _build_layout(self) -> None:
        row = QHBoxLayout()
        row.addWidget(self.palette_panel)
        for caption, widget in ((self.canvas_caption, self.canvas),
                                *((self.pane_captions[n], self.panes[n]) for n in PANES)):
            column = QVBoxLayout()
            column.addWidget(caption)
            column.addWidget(widget, stretch=1)
            row.addLayout(column, stretch=1)
        self.banner.setStyleSheet("background: #fff3c4; color: #5a4500; padding: 4px;")
        self.banner.setVisible(False)
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 4, 6, 4)
        outer.addWidget(self.banner)
        outer.addLayout(row, stretch=1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Draw on the canvas; both generators render live.")

    def _action(self, text: str, slot: Callable, shortcut=None, checkable: bool = False,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            shortcuts = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setCheckable(checkable)
        action.setStatusTip(tip)
        action.setToolTip(f"{text.replace('...', '').replace('&', '')}"
                          + (f" ({action.shortcut().toString()})" if shortcut else ""))
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self._action("&Open label map...", self.open_label_map_dialog, "Ctrl+O"))
        self.sample_action = self._action("&Random sample", self.random_sample, "Ctrl+N",
                                          tip="Load a sample from assets/samples")
        file_menu.addAction(self.sample_action)
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Save label map...", self.save_label_map_dialog, "Ctrl+S"))
        file_menu.addAction(self._action("Save &outputs...", self.save_outputs_dialog, "Ctrl+Shift+S"))
        file_menu.addAction(self._action("Save side-by-side &composite...", self.save_composite_dialog))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, "Ctrl+Q"))

        edit_menu = menu.addMenu("&Edit")
        self.undo_action = self._action("&Undo", self.undo, "Ctrl+Z")
        self.redo_action = self._action("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.clear_action = self._action("&Clear", self.clear_canvas, "Ctrl+Backspace",
                                         tip="Fill the canvas with the background class")
        for action in (self.undo_action, self.redo_action, self.clear_action):
            edit_menu.addAction(action)

        tools_menu = menu.addMenu("&Tools")
        self.tool_group = QActionGroup(self)
        self.tool_actions: Dict[str, QAction] = {}
        for tool in TOOLS:
            action = self._action(tool.capitalize(), lambda _c=False, t=tool: self.set_tool(t),
                                  TOOL_KEYS[tool], checkable=True)
            self.tool_group.addAction(action)
            tools_menu.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions["brush"].setChecked(True)

        model_menu = menu.addMenu("&Model")
        model_menu.addAction(self._action("Open &original model...",
                                          lambda: self.open_model_dialog("original")))
        model_menu.addAction(self._action("Open &compressed model...",
                                          lambda: self.open_model_dialog("compressed")))
        backend_menu = model_menu.addMenu("&Backend")
        self.backend_group = QActionGroup(self)
        installed = model_files.installed_backends()
        for name in ("auto",) + tuple(model_files.BACKEND_MODULES):
            action = self._action(name if name != "auto" else "auto (from the file extension)",
                                  lambda _c=False, b=name: self.set_backend(None if b == "auto" else b),
                                  checkable=True)
            action.setEnabled(name == "auto" or name in installed)
            action.setChecked(name == (self.backend or "auto"))
            self.backend_group.addAction(action)
            backend_menu.addAction(action)
        model_menu.addSeparator()
        self.live_action = self._action("&Live rendering", self.set_live, "Ctrl+L", checkable=True,
                                        tip="Render while drawing; off: render with Ctrl+Return")
        self.live_action.setChecked(True)
        self.render_action = self._action("&Render now", lambda: self.submit_render(force=True),
                                          ["Ctrl+Return", "Ctrl+Enter"])
        model_menu.addAction(self.live_action)
        model_menu.addAction(self.render_action)

        bench_menu = menu.addMenu("&Benchmark")
        bench_menu.addAction(self._action("&Run benchmark...", self.open_benchmark, "Ctrl+B"))
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", self.show_shortcuts, "F1"))

        toolbar = QToolBar("Tools")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        for tool in TOOLS:
            toolbar.addAction(self.tool_actions[tool])
        toolbar.addSeparator()
        for action in (self.undo_action, self.redo_action, self.clear_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.live_action)
        toolbar.addAction(self.render_action)
        toolbar.addAction(self.sample_action)

        # Digits select swatches (1..9, 0 = tenth), as class keys in paint programs.
        for index in range(10):
            key = str((index + 1) % 10)
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(lambda i=index: self.palette_panel.select_index(i))
        self._update_history_actions()

    # -- models --------------------------------------------------------------------------------
    def open_models(self, original: str, compressed: str) -> None:
        """Check both files (exist, metadata, compatible), set up the canvas, open the engines
        on the workers. Raises FileNotFoundError / ValueError with the message to show."""
        original = model_files.resolve_for_backend(original, self.backend)
        compressed = model_files.resolve_for_backend(compressed, self.backend)
        metadata = {"original": model_files.peek_metadata(original),
                    "compressed": model_files.peek_metadata(compressed)}
        problem = model_files.compatibility_problem(metadata["original"], metadata["compressed"])
        if problem:
            raise ValueError(problem)
        self._setup_document(metadata["original"] or metadata["compressed"])
        for name, path in (("original", original), ("compressed", compressed)):
            self._open_pane(name, path, metadata[name])

    def _open_pane(self, name: str, path: str, metadata: Dict[str, Any]) -> None:
        self.paths[name], self.metadata[name] = path, metadata
        self.engine_info.pop(name, None)
        self.panes[name].set_status(f"loading {os.path.basename(path)}...")
        self.panes[name].clear_result()
        worker, _ = self.workers[name]
        # Force the chosen backend only on files it opens (open_engine rejects the others).
        backend = self.backend if model_files.backend_of(path) == self.backend else None
        worker.request_open(path, backend, self.device, self.threads)
        self._update_title()

    def open_model(self, name: str, path: str) -> None:
        """Replace one pane's model (Model menu); the other pane must stay compatible."""
        metadata = model_files.peek_metadata(path)
        other = "compressed" if name == "original" else "original"
        problem = model_files.compatibility_problem(metadata, self.metadata.get(other, {}))
        if problem:
            raise ValueError(problem)
        if name == "original" or not self.metadata.get("original"):
            self._setup_document(metadata)
        self._open_pane(name, path, metadata)

    def set_backend(self, backend: Optional[str]) -> None:
        """Reopen both models with ``backend``, using sibling files (model.onnx <->
        model.safetensors) where the current file is for another backend."""
        try:
            paths = {name: model_files.resolve_for_backend(self.paths[name], backend) for name in PANES}
        except ValueError as error:
            self.show_error("Backend", str(error))
            return
        self.backend = backend
        for name in PANES:
            self._open_pane(name, paths[name], self.metadata[name])

    def _setup_document(self, metadata: Dict[str, Any]) -> None:
        """Canvas mode, palette and resolution from a model's metadata; keeps the drawing when
        they do not change."""
        kind = model_files.canvas_kind(metadata)
        palette = load_palette(metadata["palette"]) if kind == "label" else None
        height, width = (int(v) for v in (metadata.get("resolution") or (256, 256)))
        same = (kind == self.kind and (palette.name if palette else None) ==
                (self.palette.name if self.palette else None) and self.label_map.shape == (height, width))
        self.kind, self.palette = kind, palette
        if kind == "label":
            assert palette is not None
            fill, swatches, title = palette.background_id, palette_swatches(palette), "Classes"
            default = next((v for v, n, _ in swatches if n == "facade"), swatches[0][0])
        else:
            fill, swatches, title, default = PAPER, sketch_swatches(), "Sketch", INK
        if not same or self.request_id == 0:
            self.label_map.reset(fill_value=fill, height=height, width=width)
            self.canvas.erase_value = fill
            self.palette_panel.set_swatches(swatches, title, selected=default)
            self.canvas.set_brush_size(DEFAULT_BRUSH_PX[kind])
            self.palette_panel.set_brush_size(self.canvas.brush_px)
            self.canvas.refresh()
            self._submitted_version = -1
        for tool in ("fill", "rectangle"):  # sketches are pen and eraser (and lines) only
            if hasattr(self, "tool_actions"):
                self.tool_actions[tool].setEnabled(kind == "label")
        what = f"'{palette.name}' labels" if palette else "sketch (dark strokes on white)"
        self.canvas_caption.setText(f"<b>Canvas</b>: {what}, {height}x{width} model pixels")
        self._update_history_actions()

    def _colorize(self, ids: np.ndarray) -> np.ndarray:
        if self.kind == "label" and self.palette is not None:
            return self.palette.lut()[ids]
        return ids  # a sketch is its own gray image

    def _update_title(self) -> None:
        title = "GAN Compression demo"
        if self.palette is not None:
            title += f": {self.palette.name} labels \u2192 photo"
        elif self.kind == "sketch":
            title += ": sketch \u2192 photo"
        placeholder = any(model_files.is_placeholder(m) for m in self.metadata.values())
        if placeholder:
            title += "  [untrained placeholder models: outputs are not photos]"
        self.setWindowTitle(title)
        self.banner.setText("Untrained placeholder models (random weights, built by "
                            "<tt>python -m export.placeholders</tt>): the outputs follow the "
                            "layout but are not photos; latency and MACs are real.")
        self.banner.setVisible(placeholder)
        roles = {"original": "teacher", "compressed": "student"}
        for name in PANES:
            path = self.paths.get(name, "")
            self.pane_captions[name].setText(f"<b>{name.capitalize()}</b> ({roles[name]}): "
                                             f"{os.path.basename(path)}")

    def _on_opened(self, name: str, info: Dict[str, Any]) -> None:
        self.engine_info[name] = info
        self.panes[name].set_engine_info(info)
        if len(self.engine_info) == len(PANES):
            self.statusBar().showMessage(
                f"original: {info_line(self.engine_info['original'])} | compressed: "
                f"{info_line(self.engine_info['compressed'])}")
        last = self._last_request
        if last is not None and last.version == self.label_map.version:
            self.workers[name][0].submit(last)  # same id as the other pane: they stay in step
        else:
            self.submit_render(force=True)

    def _on_failed(self, name: str, message: str) -> None:
        self.panes[name].set_status("error: see the status bar")
        self.show_error(f"{name.capitalize()} model", message)

    def show_error(self, title: str, message: str) -> None:
        """Report without blocking: status bar, stderr-visible list, a window-modal box."""
        self.errors.append(message)
        self.statusBar().showMessage(message, 15000)
        if self.isVisible():
            box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    # -- rendering ------------------------------------------------------------------------------
    def set_live(self, live: bool) -> None:
        self.live = bool(live)
        self.live_action.setChecked(self.live)
        if self.live:
            self.submit_render()

    def _on_edited(self) -> None:
        if self.live and not self.render_timer.isActive():
            self.render_timer.start()  # throttle: the first edit starts the clock

    def _on_stroke_finished(self) -> None:
        self._update_history_actions()
        if self.live:
            self.render_timer.stop()
            self.submit_render()  # forced now: the final state of the stroke

    def submit_render(self, force: bool = False) -> int:
        """Send the current map to the workers; returns the request id (-1 when skipped: the
        map did not change since the last request and nothing forces a render)."""
        version = self.label_map.version
        if not force and version == self._submitted_version:
            return -1
        if self._benchmark is not None and self._benchmark.running:
            return -1  # keep the cores for the benchmark; the release after it renders
        self._submitted_version = version
        self.request_id += 1
        request = RenderRequest(self.request_id, self.label_map.snapshot(), version)
        self.request_log[self.request_id] = (version, request.submitted_s)
        self.request_log.pop(self.request_id - REQUEST_LOG_SIZE, None)  # bounded: hours of drawing
        self._last_request = request
        for name in PANES:
            self.workers[name][0].submit(request)  # one snapshot, read-only, shared by both
        return self.request_id

    # -- editing ----------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        self.canvas.set_tool(tool)
        self.tool_actions[tool].setChecked(True)

    def _on_value_selected(self, value: int) -> None:
        self.canvas.set_value(value)
        if self.canvas.tool == "eraser":
            self.set_tool("brush")

    def _on_hover(self, x: int, y: int, value: int) -> None:
        name = (self.palette.name_of(value) if self.palette is not None and value in self.palette.ids
                else ("ink" if value < 128 else "paper"))
        dropped = sum(worker.dropped for worker, _ in self.workers.values())
        self.statusBar().showMessage(f"x {x}, y {y}: {name} | stale requests dropped: {dropped}")

    def _after_map_change(self) -> None:
        self.canvas.refresh()
        self._update_history_actions()
        if self.live:
            self.submit_render()

    def undo(self) -> None:
        if self.label_map.undo():
            self._after_map_change()

    def redo(self) -> None:
        if self.label_map.redo():
            self._after_map_change()

    def clear_canvas(self) -> None:
        if self.label_map.replace(np.full(self.label_map.shape, self.label_map.fill_value, np.uint8)):
            self._after_map_change()

    def load_map(self, ids: np.ndarray) -> None:
        """Replace the drawing with ``ids`` (undoable)."""
        if self.label_map.replace(ids):
            self._after_map_change()

    def _update_history_actions(self) -> None:
        if hasattr(self, "undo_action"):
            self.undo_action.setEnabled(self.label_map.can_undo)
            self.redo_action.setEnabled(self.label_map.can_redo)

    # -- files ------------------------------------------------------------------------------------
    def read_map_file(self, path: str) -> np.ndarray:
        if self.kind == "label":
            assert self.palette is not None
            return read_label_map(path, self.palette, self.label_map.shape)
        return read_sketch(path, self.label_map.shape)

    def open_label_map(self, path: str) -> None:
        self.load_map(self.read_map_file(path))
        self.statusBar().showMessage(f"opened {path}", 5000)

    def random_sample(self) -> Optional[str]:
        samples = model_files.samples_for(self.metadata.get("original", {}), self.kind)
        if not samples:
            self.show_error("Random sample", f"no samples for this model in "
                            f"{model_files.SAMPLES_DIR}; open a file with File > Open")
            return None
        path = self._rng.choice(samples)
        self.open_label_map(path)
        return path

    def map_qimage(self) -> QImage:
        """The canvas as it looks (colourised labels or the sketch) at model resolution."""
        return numpy_to_qimage(self._colorize(self.label_map.ids))

    def save_label_map(self, path: str) -> None:
        if self.kind == "label":
            assert self.palette is not None
            write_label_map(path, self.label_map.ids, self.palette)
        else:
            write_image(path, numpy_to_qimage(self.label_map.ids))

    def save_outputs(self, base_path: str) -> List[str]:
        """Write each pane's output as <base>_<pane>.png; returns the paths."""
        stem = os.path.splitext(base_path)[0]
        written = []
        for name in PANES:
            image = self.panes[name].image
            if image is not None:
                write_image(f"{stem}_{name}.png", image)
                written.append(f"{stem}_{name}.png")
        if not written:
            raise ValueError("nothing rendered yet: draw something first")
        return written

    def composite_image(self) -> QImage:
        titles = ["input"] + [f"{name}: {info_line(self.engine_info.get(name, {}))}" for name in PANES]
        return composite([self.map_qimage()] + [self.panes[n].image for n in PANES], titles)

    def _ask_save(self, title: str, default: str, filters: str) -> Optional[str]:
        path, _ = QFileDialog.getSaveFileName(self, title, default, filters)
        return path or None

    def _guarded(self, title: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except (OSError, ValueError) as error:
            self.show_error(title, str(error))

    def open_label_map_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open label map", model_files.SAMPLES_DIR, IMAGE_FILTER)
        if path:
            self._guarded("Open label map", lambda: self.open_label_map(path))

    def save_label_map_dialog(self) -> None:
        path = self._ask_save("Save label map (class-id PNG)", "label_map.png", "PNG (*.png)")
        if path:
            self._guarded("Save label map", lambda: self.save_label_map(path))

    def save_outputs_dialog(self) -> None:
        path = self._ask_save("Save outputs as <name>_original.png, <name>_compressed.png",
                              "output.png", "PNG (*.png)")
        if path:
            self._guarded("Save outputs", lambda: self.save_outputs(path))

    def save_composite_dialog(self) -> None:
        path = self._ask_save("Save side-by-side composite", "composite.png", IMAGE_FILTER)
        if path:
            self._guarded("Save composite", lambda: write_image(path, self.composite_image()))

    def open_model_dialog(self, name: str) -> None:
        start = os.path.dirname(self.paths.get(name, model_files.MODEL_DIR))
        path, _ = QFileDialog.getOpenFileName(self, f"Open {name} model", start, model_files.MODEL_FILTER)
        if path:
            self._guarded(f"Open {name} model", lambda: self.open_model(name, path))

    # -- benchmark, help, closing ----------------------------------------------------------------
    def benchmark_dialog(self) -> BenchmarkDialog:
        """A dialog benchmarking the files the panes show, with the panes' device and threads."""
        self.render_timer.stop()
        dialog = BenchmarkDialog([self.paths[n] for n in PANES], list(PANES), self.device,
                                 self.threads, parent=self)
        self._benchmark = dialog
        dialog.finished.connect(self._benchmark_closed)
        return dialog

    def _benchmark_closed(self, _result: int) -> None:
        self._benchmark = None
        self.submit_render()  # strokes drawn during the benchmark were not rendered

    def open_benchmark(self) -> None:
        dialog = self.benchmark_dialog()
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def show_shortcuts(self) -> None:
        text = ("<b>Tools</b>: B brush, E eraser, F fill, R rectangle, L line; right-drag erases; "
                "mouse wheel: brush size<br><b>Classes</b>: 1-9, 0<br><b>Edit</b>: Ctrl+Z undo, "
                "Ctrl+Shift+Z redo, Ctrl+Backspace clear<br><b>Render</b>: Ctrl+L live on/off, "
                "Ctrl+Return render now<br><b>Files</b>: Ctrl+O open, Ctrl+N random sample, Ctrl+S "
                "save label map, Ctrl+Shift+S save outputs<br><b>Benchmark</b>: Ctrl+B")
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", text, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def shutdown(self) -> None:
        """Stop rendering and close both engines on their own threads (idempotent)."""
        self.render_timer.stop()
        if self._benchmark is not None:
            self._benchmark.shutdown()
        for worker, thread in self.workers.values():
            stop_worker(worker, thread)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)


def info_line(info: Dict[str, Any]) -> str:
    """"onnxruntime/cpu sub_mobile_resnet_9blocks 1.42G MACs" for status lines and captions."""
    if not info:
        return "not loaded"
    macs = info.get("metadata", {}).get("macs")
    return (f"{info.get('backend')}/{info.get('device')} {info.get('metadata', {}).get('arch', '?')}"
            + (f" {macs / 1e9:.2f}G MACs" if macs else ""))

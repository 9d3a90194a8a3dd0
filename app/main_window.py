"""MainWindow: palette | canvas | original output | compressed output, with menus and live rendering.

Rendering: every edit of the canvas starts a ~30 ms throttle timer (not a debounce: a render goes
out every 30 ms while drawing), a mouse release renders at once, and the Live toggle switches to
manual rendering (Render button, Ctrl+Return). Each render request carries one id and a snapshot
of the map to both panes' workers, which drop stale requests themselves (see inference_worker).
With "original renders on stroke end" the throttled requests go to the compressed pane only and
the original renders the stroke's final state (a slow teacher stays usable; see window_views).
Nothing here waits on inference: the GUI thread only copies the map and paints images.
"""
import os
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QMessageBox, QSizePolicy, QVBoxLayout, QWidget

from app import model_files, model_pairs
from app.benchmark_dialog import BenchmarkDialog
from app.canvas import CanvasWidget
from app.inference_worker import EngineOpener, RenderRequest, start_worker, stop_worker
from app.label_map import LabelMap
from app.palette_panel import INK, PAPER, PalettePanel, palette_swatches, sketch_swatches
from app.result_pane import ResultPane
from app.status_line import StatusLine
from app.window_actions import WindowActions
from app.window_files import PANES, WindowFiles, info_line
from app.window_views import WindowViews
from compress.common.palettes import Palette, load_palette
from engines.factory import open_engine

THROTTLE_MS = 30  # at most one render request per 30 ms while drawing (~33 per second)
DEFAULT_BRUSH_PX = {"label": 12, "sketch": 2}
REQUEST_LOG_SIZE = 4096  # request id -> (map version, time) kept for latency figures


class MainWindow(WindowActions, WindowFiles, WindowViews, QMainWindow):
    """The demo window. ``opener`` builds engines (tests pass slow fakes); ``threads`` is the
    intra-op CPU thread count per pane (None: backend default); ``worker_nice`` lowers the
    inference threads' priority (Linux nice increment) so the GUI thread wins the cores;
    ``original_on_release``: the original pane renders only when a stroke ends.
    ``ask(title, question) -> bool`` asks the user a yes/no question (tests answer it)."""

    def __init__(self, original: str, compressed: str, backend: Optional[str] = None,
                 device: Optional[str] = None, threads: Optional[int] = None,
                 opener: EngineOpener = open_engine, seed: Optional[int] = None,
                 worker_nice: int = 0, original_on_release: bool = False):
        super().__init__()
        self._init_views(original_on_release)
        self.backend, self.device, self.threads = backend, device, threads
        self.paths: Dict[str, str] = {}  # the files the panes run (maybe a backend's sibling)
        self.opened_paths: Dict[str, str] = {}  # the files the user opened
        self.metadata: Dict[str, Dict[str, Any]] = {}
        self.engine_info: Dict[str, Dict[str, Any]] = {}
        self.errors: List[str] = []
        self.kind = "label"
        self.palette: Optional[Palette] = None
        self.pair_name: Optional[str] = None  # the Model > Pair entry both panes show, if any
        self.ask: Callable[[str, str], bool] = self._ask_user
        self.live = True
        self.request_id = 0
        self.request_log: Dict[int, Tuple[int, float]] = {}  # request id -> (map version, time)
        self._submitted_version = -1
        self._last_request: Optional[RenderRequest] = None
        self._rng = random.Random(seed)
        self._benchmark: Optional[BenchmarkDialog] = None
        self._last_problem: Dict[str, Optional[str]] = {}

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
        self.render_timer.timeout.connect(lambda: self.submit_render(drawing=True))
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
            worker.rendered.connect(lambda _id, _image, timings, n=name: self._check_output(n, timings))
            worker.rendered.connect(lambda rid, image, _t, n=name: self.track_output(n, rid, image))
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
            # a long file name is clipped (full path in the tooltip) instead of widening its column
            caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            column = QVBoxLayout()
            column.addWidget(caption)
            column.addWidget(widget, stretch=1)
            if widget is self.panes["compressed"]:
                column.addWidget(self.compute_slider)  # hidden unless the pair ships a ladder
            row.addLayout(column, stretch=1)
        self.banner.setStyleSheet("background: #fff3c4; color: #5a4500; padding: 4px;")
        self.banner.setVisible(False)
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 4, 6, 4)
        outer.addWidget(self.banner)
        outer.addLayout(row, stretch=1)
        self.setCentralWidget(central)
        self.status_line = StatusLine(self.statusBar())
        self.status_line.info("Draw on the canvas; both generators render live.")

    # -- models --------------------------------------------------------------------------------
    def open_models(self, original: str, compressed: str) -> None:
        """Check both files (exist, metadata, compatible), set up the canvas, open the engines
        on the workers. Raises FileNotFoundError / ValueError with the message to show."""
        original = model_files.resolve_for_backend(original, self.backend)
        compressed = model_files.resolve_for_backend(compressed, self.backend)
        metadata = {"original": model_files.peek_metadata(original),
                    "compressed": model_files.peek_metadata(compressed)}
        for name, path in (("original", original), ("compressed", compressed)):
            model_files.require_kind(path, metadata[name])  # never guess a model's input
        problem = model_files.compatibility_problem(metadata["original"], metadata["compressed"])
        if problem:
            raise model_files.PairMismatch(problem)
        self.pair_name = _pair_name_of(original, compressed)
        self.opened_paths = {"original": original, "compressed": compressed}
        self._setup_document(metadata["original"])
        for name, path in (("original", original), ("compressed", compressed)):
            self._open_pane(name, path, metadata[name])
        self.update_rungs()

    def open_pair(self, pair: "model_pairs.ModelPair") -> None:
        """Both panes on a pair (Model > Pair); the canvas follows its input kind."""
        self.open_models(pair.original, pair.compressed)
        self.status_line.info(f"opened the {pair.name} pair", 5000)

    def open_pair_guarded(self, pair: "model_pairs.ModelPair") -> None:
        self._guarded(f"Open the {pair.name} pair", lambda: self.open_pair(pair))
        self._update_file_actions()  # re-check the pair that is actually open

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
        """Replace one pane's model (Model menu). Raises PairMismatch when the other pane draws
        on another kind of canvas (`offer_pair_switch` turns that into a choice)."""
        metadata = model_files.peek_metadata(path)
        model_files.require_kind(path, metadata)
        other = "compressed" if name == "original" else "original"
        problem = model_files.compatibility_problem(metadata, self.metadata.get(other, {}))
        if problem:
            raise model_files.PairMismatch(problem, metadata)
        if name == "original" or not self.metadata.get("original"):
            self._setup_document(metadata)
        paths = dict(self.paths, **{name: path})
        self.pair_name = _pair_name_of(paths.get("original", ""), paths.get("compressed", ""))
        self.opened_paths[name] = path
        self._open_pane(name, path, metadata)
        self.update_rungs()
        self._update_file_actions()

    def offer_pair_switch(self, name: str, path: str, metadata: Optional[Dict[str, Any]] = None) -> bool:
        """``path`` does not fit the other pane: offer the shipped pair of its kind (``path`` in
        pane ``name``, that pair's other model beside it), or ``path`` in both panes when no pair
        fits. Returns whether the models were switched."""
        metadata = metadata if metadata is not None else model_files.peek_metadata(path)
        kind, palette = model_pairs.document_key(metadata)
        what = f"{palette} label maps" if palette else "sketches"
        pair = model_pairs.pair_for(metadata, model_pairs.discover_pairs())
        if pair is not None:
            other = pair.compressed if name == "original" else pair.original
            question = (f"{os.path.basename(path)} draws {what}, unlike the other pane's model.\n\n"
                        f"Switch to the {pair.name} pair, with this file as the {name} model?")
        else:
            other = path
            question = (f"{os.path.basename(path)} draws {what}, unlike the other pane's model, and no "
                        f"shipped pair does.\n\nOpen it in both panes?")
        if not self.ask("Switch the model pair?", question):
            return False
        both = {name: path, ("compressed" if name == "original" else "original"): other}
        self.open_models(both["original"], both["compressed"])
        return True

    def set_backend(self, backend: Optional[str]) -> None:
        """Reopen both models with ``backend``, using sibling files (model.onnx <->
        model.safetensors) where the current file is for another backend."""
        try:  # "auto" goes back to the files the user opened (a .onnx after a torch detour)
            chosen = self.opened_paths if backend is None else self.paths
            paths = {name: model_files.resolve_for_backend(chosen[name], backend) for name in PANES}
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
        height, width = model_files.model_resolution(metadata)
        same_kind = kind == self.kind and (palette.name if palette else None) == (
            self.palette.name if self.palette else None)
        same = same_kind and self.label_map.shape == (height, width)
        if same_kind and not same and self.request_id > 0:  # only the size changes: keep the drawing
            self._rescale_drawing(height, width)
            same = True
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
        if kind == "sketch" and self.canvas.tool in ("fill", "rectangle"):
            self.set_tool("brush")  # a pen: fill and rectangle make no sense on a sketch
        self._update_file_actions()
        what = f"'{palette.name}' labels" if palette else "sketch (black pen on white paper)"
        self.canvas_caption.setText(f"<b>Canvas</b>: {what}, {height}x{width} model pixels")
        self._update_history_actions()

    def _rescale_drawing(self, height: int, width: int) -> None:
        """Nearest-neighbour rescale of the drawing to a model of another resolution (labels stay
        labels); the undo history restarts at the rescaled drawing, and the status bar says so."""
        from engines.preprocess import resize_label_map
        old_height, old_width = self.label_map.shape
        self.label_map.reset(initial=resize_label_map(self.label_map.ids, (height, width)))
        self.canvas.refresh()
        self._submitted_version = -1
        self.status_line.info(f"drawing rescaled from {old_height}x{old_width} to {height}x{width} for this "
                              "model (undo history starts here)", 10000)

    def _colorize(self, ids: np.ndarray) -> np.ndarray:
        if self.kind == "label" and self.palette is not None:
            return self.palette.lut()[ids]
        return ids  # a sketch is its own gray image

    def _update_title(self) -> None:
        title = "GAN Compression demo"
        if self.pair_name:
            title += f" [{self.pair_name}]"
        if self.palette is not None:
            title += f": {self.palette.name} labels \u2192 photo"
        elif self.kind == "sketch":
            title += ": sketch \u2192 photo"
        untrained = [n for n, m in self.metadata.items() if model_files.is_untrained(m)]
        if untrained:
            placeholders = any(model_files.is_placeholder(self.metadata[n]) for n in untrained)
            kind = "placeholder " if placeholders else ""
            title += f"  [untrained {kind}models: outputs are not photos]"
        self.setWindowTitle(title)
        source = ("built by <tt>python -m export.placeholders</tt>"
                  if any(model_files.is_placeholder(self.metadata[n]) for n in untrained)
                  else "exported with <tt>python -m export.onnx random</tt>")
        self.banner.setText(f"Untrained {' and '.join(untrained)} model{'s' if len(untrained) > 1 else ''} "
                            f"(random weights, {source}): the outputs follow the layout but are not "
                            "photos; latency and MACs are real.")
        self.banner.setVisible(bool(untrained))
        roles = {"original": "teacher", "compressed": "student"}
        for name in PANES:
            path = self.paths.get(name, "")
            self.pane_captions[name].setText(f"<b>{name.capitalize()}</b> ({roles[name]}): "
                                             f"{os.path.basename(path)}")
            self.pane_captions[name].setToolTip(path)

    def _on_opened(self, name: str, info: Dict[str, Any]) -> None:
        self.engine_info[name] = info
        self.panes[name].set_engine_info(info)
        if len(self.engine_info) == len(PANES):
            self.status_line.info(
                f"original: {info_line(self.engine_info['original'])} | compressed: "
                f"{info_line(self.engine_info['compressed'])}")
        last = self._last_request
        if last is not None and last.version == self.label_map.version:
            self.send(name, last)  # same id as the other pane: they stay in step
        else:
            self.submit_render(force=True)

    def _check_output(self, name: str, timings: Dict[str, Any]) -> None:
        """A NaN / wrong-size output is flagged in the status bar (the pane's overlay says it too)."""
        problem = timings.get("problem")
        if problem and problem != self._last_problem.get(name):
            self.status_line.error(f"{name} model: bad output: {problem}")
        self._last_problem[name] = problem

    def _on_failed(self, name: str, message: str) -> None:
        self.panes[name].set_status("error: see the status bar")
        self.show_error(f"{name.capitalize()} model", message)

    def show_error(self, title: str, message: str) -> None:
        """Report without blocking: status bar, stderr-visible list, a window-modal box."""
        self.errors.append(message)
        self.status_line.error(message)
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
        elif not self.live:
            self._mark_stale()

    def _mark_stale(self) -> None:
        """Live rendering is off and the canvas changed: the outputs no longer show it."""
        for name in PANES:
            self.panes[name].set_stale(True)

    def _on_stroke_finished(self) -> None:
        self._update_history_actions()
        if self.live:
            self.render_timer.stop()
            self.submit_render()  # forced now: the final state of the stroke

    def submit_render(self, force: bool = False, drawing: bool = False) -> int:
        """Send the current map to the workers; returns the request id (-1 when skipped: the
        map did not change since the last request and nothing forces a render). ``drawing``:
        a throttled request in the middle of a stroke (see original_on_release)."""
        if self._benchmark is not None and self._benchmark.running:
            return -1  # keep the cores for the benchmark; the release after it renders
        version = self.label_map.version
        if not force and version == self._submitted_version:
            return -1 if drawing else self.catch_up_original()
        self._submitted_version = version
        self.request_id += 1
        request = RenderRequest(self.request_id, self.label_map.snapshot(), version)
        self.request_log[self.request_id] = (version, request.submitted_s)
        self.request_log.pop(self.request_id - REQUEST_LOG_SIZE, None)  # bounded: hours of drawing
        self._last_request = request
        for name in self.render_targets(drawing):
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
        self.status_line.show_pointer(f"x {x}, y {y}: {name} | stale requests dropped: {dropped}")

    def _after_map_change(self) -> None:
        self.canvas.refresh()
        self._update_history_actions()
        if self.live:
            self.submit_render()
        else:
            self._mark_stale()

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

    # -- benchmark, help, closing ----------------------------------------------------------------
    def benchmark_dialog(self) -> BenchmarkDialog:
        """A dialog benchmarking the files the panes show, with the panes' device and threads."""
        self.render_timer.stop()
        dialog = BenchmarkDialog([self.paths[n] for n in PANES], list(PANES), self.device,
                                 self.threads, parent=self, ladder=self.ladder_labels())
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
                "mouse wheel: brush size<br><b>Classes</b>: 1-9, 0, -, =<br><b>Edit</b>: Ctrl+Z undo, "
                "Ctrl+Shift+Z redo, Ctrl+Backspace clear<br><b>Render</b>: Ctrl+L live on/off, "
                "Ctrl+Return render now<br><b>View</b>: Ctrl+D difference |original \u2212 compressed|"
                "<br><b>Files</b>: Ctrl+O open, Ctrl+N random sample, Ctrl+S "
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


def _pair_name_of(original: str, compressed: str) -> Optional[str]:
    """The name of the discovered pair made of exactly these two files, the compressed one
    being any rung of its ladder (None otherwise)."""
    for pair in model_pairs.discover_pairs():
        if os.path.abspath(pair.original) == os.path.abspath(original) and os.path.abspath(
                compressed) in {os.path.abspath(path) for path in pair.students()}:
            return pair.name
    return None

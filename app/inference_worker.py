"""One inference worker per result pane: a QObject living on its own QThread that owns its engine.

Ownership: the engine is opened, used and closed on the worker's thread only (TensorRT needs
one thread to own the engine, its context, stream and buffers; CPU backends do not care). The
GUI thread talks to the worker through queued signals and the `LatestMailbox`, and gets back a
QImage (QImage, unlike QPixmap, may be built off the GUI thread) plus timings through signals.

Latest wins: `submit` puts a request into a one-slot mailbox, replacing any request not yet
started. While the engine runs, strokes keep arriving and overwrite each other; when it is free
it takes only the newest. Stale strokes are dropped, never queued, so the output never lags
behind the drawing by more than one inference.
"""
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
from PyQt6.QtCore import QObject, QThread, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage

from app.image_io import numpy_to_qimage
from engines.base import Engine
from engines.factory import open_engine
from engines.preprocess import Preprocessor, make_preprocessor, output_problem

# open_engine's signature; tests pass a fake that builds a slow engine.
EngineOpener = Callable[..., Engine]
WARMUP_RUNS = 3  # inferences on a blank input when a model opens, before any figure is shown
BLANK_GRAY = 235  # what a pane shows for a blank canvas (see InferenceWorker._blank_frame)


def is_blank(canvas: np.ndarray) -> bool:
    """A canvas of one single value (an empty label map or an empty sketch page)."""
    return canvas.size == 0 or bool((canvas == canvas.flat[0]).all())


class RenderRequest:
    """A canvas snapshot to render. ``request_id`` is shared by both panes; ``version`` is the
    label map's version, ``submitted_s`` a time.perf_counter() stamp (for latency figures)."""

    __slots__ = ("request_id", "canvas", "version", "submitted_s")

    def __init__(self, request_id: int, canvas: np.ndarray, version: int = 0,
                 submitted_s: Optional[float] = None):
        self.request_id = request_id
        self.canvas = canvas
        self.version = version
        self.submitted_s = time.perf_counter() if submitted_s is None else submitted_s


class LatestMailbox:
    """A thread-safe slot holding only the newest item (pure Python, no Qt).

    ``put`` returns True when the consumer is idle and must be woken; while it is busy, a new
    item replaces the waiting one (counted in ``dropped``). ``take`` returns the item or None,
    and on None marks the consumer idle, so each item is woken for exactly once.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._item: Any = None
        self._busy = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        with self._lock:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            if self._busy:
                return False
            self._busy = True
            return True

    def take(self) -> Any:
        with self._lock:
            item, self._item = self._item, None
            if item is None:
                self._busy = False
            return item

    def clear(self) -> None:
        with self._lock:
            self._item = None


def lower_thread_priority(increment: int) -> bool:
    """Raise the nice value of the calling thread by ``increment`` (Linux, where nice is per
    thread and threads it starts later, such as ONNX Runtime's pool, inherit it). Returns
    whether it worked; elsewhere it does nothing."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        thread_id = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread_id, os.getpriority(os.PRIO_PROCESS, thread_id) + increment)
    except (AttributeError, OSError):
        return False
    return True


class InferenceWorker(QObject):
    """Renders canvases with one engine on the thread this object is moved to.

    Signals (emitted on the worker thread, delivered queued to GUI-thread receivers):
        opened(dict): the engine is ready: path, backend, device, metadata, resolution, mode,
            description.
        failed(str): opening or a render failed (the message says what to do).
        rendered(int, QImage, dict): request id, output image at model resolution, timings
            in ms (pre_ms, infer_ms, post_ms, total_ms, wait_ms) plus version and submitted_s.
        closed(): the engine was closed and the thread is stopping.
    """

    opened = pyqtSignal(object)
    failed = pyqtSignal(str)
    rendered = pyqtSignal(int, QImage, object)
    closed = pyqtSignal()
    _wake = pyqtSignal()
    _open_requested = pyqtSignal(object)
    _shutdown_requested = pyqtSignal()

    def __init__(self, name: str, opener: EngineOpener = open_engine, nice: int = 0):
        super().__init__()
        self.name = name
        self.nice = nice  # added to the worker thread's nice value before its first engine opens
        self._niced = False
        self._opener = opener
        self._engine: Optional[Engine] = None
        self._prepare: Optional[Preprocessor] = None
        self._instance_norm = False  # the open model normalises per instance (ResNet family)
        self._mailbox = LatestMailbox()
        self.rendered_count = 0
        self._last_id = -1  # newest request id rendered by the current engine
        # Auto connections: emitted from the GUI thread, run on this object's thread.
        self._wake.connect(self._drain)
        self._open_requested.connect(self._open)
        self._shutdown_requested.connect(self._shutdown)

    # -- called from the GUI thread ----------------------------------------------------
    @property
    def dropped(self) -> int:
        """Requests replaced before they started (stale strokes)."""
        return self._mailbox.dropped

    def request_open(self, path: str, backend: Optional[str] = None,
                     device: Optional[str] = None, threads: Optional[int] = None) -> None:
        """Open ``path`` on the worker thread (closing the current engine first)."""
        self._open_requested.emit((path, backend, device, threads))

    def submit(self, request: RenderRequest) -> None:
        """Render ``request`` when the engine is free; replaces a request still waiting."""
        if self._mailbox.put(request):
            self._wake.emit()

    def request_shutdown(self) -> None:
        """Close the engine on its thread, then stop the thread (wait on it afterwards)."""
        self._mailbox.clear()
        self._shutdown_requested.emit()

    # -- run on the worker thread ------------------------------------------------------
    @pyqtSlot(object)
    def _open(self, arguments: Tuple[str, Optional[str], Optional[str], Optional[int]]) -> None:
        path, backend, device, threads = arguments
        if not self._niced:  # before the engine starts its own threads, which inherit it
            self._niced = lower_thread_priority(self.nice) or True
        self._close_engine()
        self._mailbox.clear()  # requests drawn for the previous model are moot
        options: Dict[str, Any] = {}
        try:
            if backend == "onnxruntime" or (backend is None and path.lower().endswith(".onnx")):
                # No spin-waiting between ops: spinning pool threads would steal the cores the
                # GUI thread and the other pane need.
                options["spinning"] = False
            engine = self._opener(path, backend=backend, device=device, threads=threads, **options)
            prepare = make_preprocessor(engine.metadata, engine.input_spec)
            # Warm-up runs: the first inferences allocate buffers and pick kernels (ONNX Runtime's
            # first two runs, TensorRT's lazy tactics), which would otherwise make the user's first
            # strokes look slow and the first latency figures wrong.
            blank = np.zeros((1, engine.input_spec.channels) + prepare.resolution, np.float32)
            for _ in range(WARMUP_RUNS):
                engine.infer(blank)
        except Exception as error:  # noqa: BLE001 - any backend error becomes a message, not a crash
            self._close_engine()
            self.failed.emit(f"{self.name}: cannot open {path}: {error}")
            return
        self._engine, self._prepare = engine, prepare
        self._instance_norm = "resnet" in str(engine.metadata.get("arch", ""))  # see _blank_frame
        self._last_id = -1  # a new engine renders any request, even one the old one did
        self.opened.emit({"path": path, "backend": engine.backend, "device": engine.device,
                          "metadata": dict(engine.metadata), "resolution": prepare.resolution,
                          "mode": prepare.mode, "description": engine.describe()})

    @pyqtSlot()
    def _drain(self) -> None:
        """Render the newest request until the mailbox is empty."""
        while True:
            request = self._mailbox.take()
            if request is None:
                return
            if self._engine is None or self._prepare is None:
                continue  # not open (yet, or it failed): nothing to draw with
            if request.request_id <= self._last_id:
                continue  # already rendered (a re-submission racing the first one)
            try:
                image, timings = self._render(request)
            except Exception as error:  # noqa: BLE001 - report and keep serving strokes
                self.failed.emit(f"{self.name}: inference failed: {error}")
                continue
            self.rendered_count += 1
            self._last_id = request.request_id
            self.rendered.emit(request.request_id, image, timings)

    def _render(self, request: RenderRequest) -> Tuple[QImage, Dict[str, float]]:
        assert self._engine is not None and self._prepare is not None
        start = time.perf_counter()
        batch = self._prepare(request.canvas)  # checks the canvas (unknown class ids) in any case
        if self._instance_norm and is_blank(request.canvas):
            return self._blank_frame(request)
        prepared = time.perf_counter()
        output = self._engine.infer(batch)
        inferred = time.perf_counter()
        problem = output_problem(output, self._prepare.resolution)  # shown, never hidden
        image = numpy_to_qimage(self._prepare.to_image(np.nan_to_num(output) if problem else output))
        done = time.perf_counter()
        return image, {"pre_ms": (prepared - start) * 1e3, "infer_ms": (inferred - prepared) * 1e3,
                       "post_ms": (done - inferred) * 1e3, "total_ms": (done - start) * 1e3,
                       "wait_ms": (start - request.submitted_s) * 1e3,
                       "version": request.version, "submitted_s": request.submitted_s, "problem": problem}

    def _blank_frame(self, request: RenderRequest) -> Tuple[QImage, Dict[str, Any]]:
        """A blank (single-value) canvas is not sent to an InstanceNorm generator: every channel
        of its first layer is constant, so each InstanceNorm divides float rounding noise by
        sqrt(eps) and the output is amplified noise that differs between runtimes (up to the
        whole [-1, 1] range). The pane shows a plain frame and says "draw to render" instead."""
        height, width = self._prepare.resolution if self._prepare is not None else (1, 1)
        image = numpy_to_qimage(np.full((height, width, 3), BLANK_GRAY, np.uint8))
        now = time.perf_counter()
        return image, {"pre_ms": 0.0, "infer_ms": 0.0, "post_ms": 0.0, "total_ms": 0.0,
                       "wait_ms": (now - request.submitted_s) * 1e3, "version": request.version,
                       "submitted_s": request.submitted_s, "problem": None, "blank": True}

    @pyqtSlot()
    def _shutdown(self) -> None:
        self._close_engine()
        self.closed.emit()
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()

    def _close_engine(self) -> None:
        if self._engine is not None:
            try:
                self._engine.close()
            finally:
                self._engine, self._prepare = None, None


def start_worker(name: str, opener: EngineOpener = open_engine,
                 nice: int = 0) -> Tuple[InferenceWorker, QThread]:
    """A worker moved to a new, started QThread (the Qt worker-object pattern)."""
    thread = QThread()
    thread.setObjectName(f"inference-{name}")
    worker = InferenceWorker(name, opener, nice)
    worker.moveToThread(thread)
    thread.start()
    return worker, thread


def stop_worker(worker: InferenceWorker, thread: QThread, timeout_ms: int = 10000) -> bool:
    """Close the worker's engine on its thread and wait for the thread; False on timeout
    (an inference still running past ``timeout_ms``)."""
    if not thread.isRunning():
        return True
    worker.request_shutdown()
    return thread.wait(timeout_ms)

"""The Benchmark dialog: runs `engines.bench.run_benchmark` on both models off the GUI thread.

A BenchmarkWorker on its own QThread opens fresh engines (so TensorRT engines are owned by that
thread), times warm-up plus N runs of each model engine-only and end-to-end, and reports progress
through signals; Cancel sets a threading.Event the benchmark polls between runs. The dialog then
shows the table, the speedup next to the MAC ratio (a MACs cut does not carry over evenly to
every backend), the latency-vs-MACs plot (beside it quality vs latency, for the models the pair's
metrics.json scores: `app.model_pairs.model_quality`), and exports CSV/JSON through
engines.bench's writers.
When the open pair ships a compute ladder, "whole ladder" benchmarks the original and every rung
in one run (speedups against the original, one point per rung on the plot).
"""
import os
import tempfile
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from PyQt6.QtCore import QObject, Qt, QThread, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QPixmap
from PyQt6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                             QHeaderView, QLabel, QMessageBox, QProgressBar, QPushButton, QSpinBox,
                             QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.model_pairs import model_quality
from engines.bench import BenchmarkCancelled, run_benchmark
from engines.bench_results import BenchResult, human_count, write_csv, write_json, write_plot

# Qt flags combine with |, which vermin mistakes for a 3.10 union type: hence novermin.
NUMBER_ALIGNMENT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter  # novermin
COLUMNS = ("model", "backend", "MACs", "params", "mean ms", "p50 ms", "p90 ms", "FPS",
           "end-to-end ms", "speedup", "MACs ratio")


def result_cells(result: BenchResult, label: str) -> List[str]:
    """One table row: the pane label and the numbers a reader compares."""
    return [label, f"{result.backend} / {result.device}", human_count(result.macs),
            human_count(result.params),
            f"{result.engine.mean_ms:.2f}", f"{result.engine.p50_ms:.2f}",
            f"{result.engine.p90_ms:.2f}", f"{result.engine.fps:.1f}",
            f"{result.end_to_end.mean_ms:.2f}",
            "-" if result.speedup is None else f"{result.speedup:.2f}x",
            "-" if result.macs_ratio is None else f"{result.macs_ratio:.2f}x"]


def summary_text(results: Sequence[BenchResult], labels: Sequence[str]) -> str:
    """"compressed: 3.10x faster than original (engine mean) for 10.23x fewer MACs"."""
    if len(results) < 2:
        return ""
    last = results[-1]
    text = f"{labels[-1]}: {last.speedup:.2f}x faster than {labels[0]} (engine mean latency)"
    if last.macs_ratio:
        text += f" for {last.macs_ratio:.2f}x fewer MACs"
    return text


class BenchmarkWorker(QObject):
    """Runs one benchmark on the thread it is moved to (started by the `run` signal)."""

    progress = pyqtSignal(int, int, str)
    finished = pyqtSignal(object, str)  # results, plot path ("" when no plot)
    cancelled = pyqtSignal(object)  # results of the models finished before the cancel
    failed = pyqtSignal(str)
    run = pyqtSignal(object)  # settings dict; emitted from the GUI thread

    def __init__(self, plot_dir: str):
        super().__init__()
        self.cancel_event = threading.Event()
        self.plot_dir = plot_dir
        self.run.connect(self._run)

    @pyqtSlot(object)
    def _run(self, settings: Dict[str, Any]) -> None:
        self.cancel_event.clear()
        try:
            results = run_benchmark(settings["models"], warmup=settings["warmup"],
                                    runs=settings["runs"], threads=settings.get("threads"),
                                    device=settings.get("device"),
                                    progress=lambda done, total, message:
                                    self.progress.emit(done, total, message),
                                    cancel=self.cancel_event)
        except BenchmarkCancelled as stop:
            self.cancelled.emit(stop.results)
            return
        except Exception as error:  # noqa: BLE001 - any failure becomes a message in the dialog
            self.failed.emit(str(error))
            return
        plot_path = os.path.join(self.plot_dir, "latency_vs_macs.png")
        try:
            label, scores = settings.get("quality") or ("", {})
            write_plot(plot_path, results, force=True, quality=scores, quality_label=label)
        except (ImportError, ValueError, OSError):
            plot_path = ""  # no matplotlib, or no MACs in the metadata: the table still stands
        self.finished.emit(results, plot_path)


class BenchmarkDialog(QDialog):
    """Settings, progress, results table, speedup, plot and exports for the two panes' models;
    ``ladder``: (label, path) of every rung of the pair's compute ladder, offered as a choice."""

    def __init__(self, models: Sequence[str], labels: Sequence[str], device: Optional[str] = None,
                 threads: Optional[int] = None, parent: Optional[QWidget] = None,
                 ladder: Sequence[Tuple[str, str]] = ()):
        super().__init__(parent)
        self.setWindowTitle("Benchmark: original vs compressed")
        self.models, self.labels, self.device = list(models), list(labels), device
        self.pane_models, self.pane_labels = list(models), list(labels)
        self.ladder = list(ladder)
        self.results: List[BenchResult] = []
        self._settings: Dict[str, Any] = {}
        self._scratch = tempfile.TemporaryDirectory(prefix="app-bench-")

        form = self._build_form(threads)

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.csv_button = QPushButton("Export CSV...")
        self.json_button = QPushButton("Export JSON...")
        for button, kind in ((self.csv_button, "csv"), (self.json_button, "json")):
            button.setEnabled(False)
            button.clicked.connect(lambda _checked=False, k=kind: self.export_dialog(k))
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.csv_button, self.json_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.progress = QProgressBar()
        self.status = QLabel("Press Start: each model runs warm-up, then timed engine-only and "
                             "end-to-end runs, one model after the other. Live rendering pauses.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self._fit_table()
        self.summary = QLabel()
        self.summary.setStyleSheet("font-weight: bold")
        self.plot = QLabel()
        self.plot.setAlignment(Qt.AlignmentFlag.AlignCenter)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        for item in (form, buttons):
            layout.addLayout(item)
        for widget in (self.progress, self.status, self.table, self.summary, self.plot, close):
            layout.addWidget(widget)
        self.resize(900, 720)

        self._thread = QThread(self)
        self._thread.setObjectName("benchmark")
        self.worker = BenchmarkWorker(self._scratch.name)
        self.worker.moveToThread(self._thread)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_finished)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.failed.connect(self._on_failed)
        self._thread.start()

    def _build_form(self, threads: Optional[int]) -> QFormLayout:
        """The settings: runs, warm-up, threads, the ladder choice and the models to run."""
        self.runs = QSpinBox()
        self.runs.setRange(1, 10000)
        self.runs.setValue(30)
        self.warmup = QSpinBox()
        self.warmup.setRange(0, 1000)
        self.warmup.setValue(5)
        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setValue(threads or 0)
        self.threads.setSpecialValueText("backend default")
        form = QFormLayout()
        form.addRow("Timed runs per mode", self.runs)
        form.addRow("Warm-up runs", self.warmup)
        form.addRow("CPU threads", self.threads)
        self.whole_ladder = QCheckBox(f"Whole compute ladder: the original and all {len(self.ladder)} "
                                      "students")
        self.whole_ladder.setVisible(len(self.ladder) >= 2)
        self.whole_ladder.toggled.connect(self._choose_models)
        form.addRow(self.whole_ladder)
        self.models_label = QLabel()
        form.addRow(self.models_label)
        self._choose_models(False)
        return form

    def _choose_models(self, whole_ladder: bool) -> None:
        """The two panes' models, or the original plus every rung (fewest MACs first)."""
        if whole_ladder and len(self.ladder) >= 2:
            self.models = [self.pane_models[0]] + [path for _, path in self.ladder]
            self.labels = [self.pane_labels[0]] + [label for label, _ in self.ladder]
        else:
            self.models, self.labels = list(self.pane_models), list(self.pane_labels)
        self.models_label.setText("<br>".join(f"<b>{label}</b>: {path}"
                                              for label, path in zip(self.labels, self.models)))
        if hasattr(self, "table"):
            self._fit_table()

    # -- running -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.cancel_button.isEnabled()

    def start(self) -> None:
        self._settings = {"models": self.models, "warmup": self.warmup.value(),
                          "runs": self.runs.value(), "threads": self.threads.value() or None,
                          "device": self.device, "quality": model_quality(self.models)}
        self.results = []
        self.table.setRowCount(0)
        self.summary.clear()
        self.plot.clear()
        self.progress.setValue(0)
        self._set_running(True)
        self.status.setText("benchmarking...")
        self.worker.run.emit(dict(self._settings))

    def cancel(self) -> None:
        self.worker.cancel_event.set()
        self.status.setText("cancelling after the current run...")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (self.runs, self.warmup, self.threads, self.whole_ladder):
            widget.setEnabled(not running)
        has_results = bool(self.results) and not running
        self.csv_button.setEnabled(has_results)
        self.json_button.setEnabled(has_results)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setMaximum(total)
        self.progress.setValue(done)
        name = message.split(":")[0]
        label = self.labels[self.models.index(name)] if name in self.models else os.path.basename(name)
        self.status.setText(f"{label}:{message.split(':', 1)[-1]} ({done}/{total})")

    def _show(self, results: Sequence[BenchResult]) -> None:
        self.results = list(results)
        self.table.setRowCount(len(self.results))
        for row, result in enumerate(self.results):
            for column, text in enumerate(result_cells(result, self.labels[row])):
                item = QTableWidgetItem(text)
                if column >= 2:
                    item.setTextAlignment(NUMBER_ALIGNMENT)
                item.setToolTip(result.model)
                self.table.setItem(row, column, item)
        self._fit_table()

    def _fit_table(self) -> None:
        """Tall enough for every row (two models: no scroll bar hiding the second one)."""
        rows = max(self.table.rowCount(), len(self.models))
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        self.table.setFixedHeight(height + rows * self.table.verticalHeader().defaultSectionSize() + 2)

    def _on_finished(self, results: List[BenchResult], plot_path: str) -> None:
        self._show(results)
        self.summary.setText(summary_text(self.results, self.labels))
        if plot_path:
            self.plot.setPixmap(QPixmap(plot_path).scaledToWidth(
                600, Qt.TransformationMode.SmoothTransformation))
        self.status.setText(f"done: {self._settings['runs']} timed runs per mode after "
                            f"{self._settings['warmup']} warm-up runs")
        self._set_running(False)

    def _on_cancelled(self, results: List[BenchResult]) -> None:
        self._show(results)
        self.status.setText(f"cancelled ({len(results)} of {len(self.models)} models finished)")
        self._set_running(False)

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"benchmark failed: {message}")
        self._set_running(False)

    # -- exporting ---------------------------------------------------------------------------
    def export(self, path: str, kind: str) -> None:
        """Write the results as CSV or JSON (replacing ``path``: the file dialog asked)."""
        if not self.results:
            raise ValueError("no results to export yet: run the benchmark first")
        if kind == "csv":
            write_csv(path, self.results, force=True)
        elif kind == "json":
            settings = dict(self._settings, labels=self.labels)
            write_json(path, self.results, settings, force=True)
        else:
            raise ValueError(f"unknown export format {kind!r}; valid: csv, json")

    def export_dialog(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export benchmark as {kind.upper()}",
                                              f"benchmark.{kind}", f"{kind.upper()} (*.{kind})")
        if not path:
            return
        try:
            self.export(path, kind)
        except (OSError, ValueError) as error:
            QMessageBox.warning(self, "Export failed", str(error))
            return
        self.status.setText(f"wrote {path}")

    # -- closing -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel a running benchmark and stop the worker thread (idempotent)."""
        self.worker.cancel_event.set()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait()
        self._scratch.cleanup()

    def done(self, result: int) -> None:  # called by accept/reject/close
        self.shutdown()
        super().done(result)

"""The Benchmark dialog runs engines.bench on two tiny models off the GUI thread."""
import csv
import json

from app.benchmark_dialog import BenchmarkDialog
from app.main_window import PANES


def make_dialog(qtbot, tiny_models, runs):
    dialog = BenchmarkDialog([tiny_models["original.onnx"], tiny_models["compressed.onnx"]],
                             list(PANES), threads=1)
    qtbot.addWidget(dialog)
    dialog.runs.setValue(runs)
    dialog.warmup.setValue(1)
    return dialog


def test_benchmark_completes_with_table_speedup_plot_and_exports(qtbot, tiny_models, tmp_path):
    dialog = make_dialog(qtbot, tiny_models, runs=3)
    progress = []
    dialog.worker.progress.connect(lambda done, total, message: progress.append((done, total)))
    with qtbot.waitSignal(dialog.worker.finished, timeout=60000):
        dialog.start_button.click()
        assert dialog.running and not dialog.start_button.isEnabled()
    assert progress[-1] == (14, 14)  # 2 models x (1 warm-up + 3 engine + 3 end-to-end)
    assert dialog.table.rowCount() == 2 and not dialog.running
    assert dialog.table.item(0, 0).text() == "original" and dialog.table.item(1, 9).text().endswith("x")
    assert dialog.results[1].macs_ratio > 1  # the student has fewer MACs
    assert "faster than original" in dialog.summary.text() and "fewer MACs" in dialog.summary.text()
    assert dialog.plot.pixmap() is not None and not dialog.plot.pixmap().isNull()
    dialog.export(str(tmp_path / "bench.csv"), "csv")
    dialog.export(str(tmp_path / "bench.json"), "json")
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    assert len(rows) == 2 and float(rows[1]["engine_mean_ms"]) > 0
    document = json.load(open(tmp_path / "bench.json"))
    assert len(document["results"]) == 2 and document["settings"]["labels"] == list(PANES)
    dialog.shutdown()


def test_plot_adds_quality_vs_latency_for_models_a_metrics_file_scores(qtbot, tiny_models, tmp_path):
    """A pair folder with compress.evaluate's metrics.json: the plot gets its second panel."""
    import shutil
    from PyQt6.QtGui import QImage
    pair = tmp_path / "pair"
    pair.mkdir()
    models = [shutil.copy(tiny_models[f"{role}.onnx"], pair / f"{role}.onnx") for role in PANES]
    (pair / "metrics.json").write_text(json.dumps({"generators": {
        role: {"path": f"assets/models/pair/{role}.safetensors", "miou": score}
        for role, score in zip(PANES, (34.4, 33.0))}}))
    dialog = BenchmarkDialog([str(p) for p in models], list(PANES), threads=1)
    qtbot.addWidget(dialog)
    dialog.runs.setValue(2)
    dialog.warmup.setValue(0)
    with qtbot.waitSignal(dialog.worker.finished, timeout=60000) as finished:
        dialog.start_button.click()
    plot_path = finished.args[1]
    assert dialog._settings["quality"][1] == {str(models[0]): 34.4, str(models[1]): 33.0}
    assert QImage(plot_path).width() > 1.4 * 7 * 110  # two panels: wider than the MACs plot alone
    dialog.shutdown()


def test_benchmark_can_be_cancelled(qtbot, tiny_models):
    dialog = make_dialog(qtbot, tiny_models, runs=5000)
    with qtbot.waitSignal(dialog.worker.progress, timeout=30000):
        dialog.start()
    with qtbot.waitSignal(dialog.worker.cancelled, timeout=30000) as cancelled:
        dialog.cancel_button.click()
    assert cancelled.args[0] == [] and "cancelled" in dialog.status.text()
    assert dialog.start_button.isEnabled() and not dialog.csv_button.isEnabled()
    dialog.shutdown()


def test_window_pauses_live_rendering_during_a_benchmark(qtbot, tiny_models):
    from tests.app.helpers import open_window
    window = open_window(qtbot, tiny_models["original.onnx"], tiny_models["compressed.onnx"])
    dialog = window.benchmark_dialog()
    assert dialog.models == [window.paths["original"], window.paths["compressed"]]
    dialog.runs.setValue(5000)
    with qtbot.waitSignal(dialog.worker.progress, timeout=30000):
        dialog.start()
    window.canvas.stroke([(5, 5), (40, 40)], tool="brush", value=3)
    assert window.submit_render() == -1  # no render competes with the benchmark
    dialog.reject()  # closing cancels and stops the worker thread
    assert not dialog._thread.isRunning()
    window.shutdown()

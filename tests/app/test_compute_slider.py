"""The compute ladder in the app: app.model_pairs finds a pair's rungs, and the slider under the
compressed pane switches between them live (off the GUI thread, the drawing re-rendered)."""
import shutil

import pytest

from app import model_files, model_pairs
from app.compute_slider import rung_text
from app.main_window import PANES
from tests.app.helpers import drag, open_window, wait_rendered, with_metadata


@pytest.fixture
def ladder_dir(tmp_path, tiny_models, monkeypatch):
    """assets/models stand-in: a facades pair whose ladder adds a faster and a slower student."""
    pair = tmp_path / "models" / "facades"
    (pair / "ladder").mkdir(parents=True)
    for role in PANES:
        shutil.copy(tiny_models[f"{role}.onnx"], pair / f"{role}.onnx")
    with_metadata(tiny_models["compressed.onnx"], pair / "ladder" / "fast.onnx", macs=1000,
                  rung="fast", latency_ms=1.5)
    with_metadata(tiny_models["original.onnx"], pair / "ladder" / "slow.onnx", macs=10 ** 12, rung="slow")
    (pair / "ladder" / "notes.txt").write_text("not a model")
    monkeypatch.setattr(model_files, "MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(model_files, "PLACEHOLDER_DIR", str(tmp_path / "no_placeholders"))
    return pair


def test_rungs_are_ordered_by_macs_with_the_default_student_among_them(ladder_dir):
    pair = model_pairs.find_pair("facades")
    assert pair.rungs == (str(ladder_dir / "ladder" / "fast.onnx"), str(ladder_dir / "compressed.onnx"),
                          str(ladder_dir / "ladder" / "slow.onnx"))
    assert pair.students() == pair.rungs
    assert model_pairs.ladder_rungs(str(ladder_dir.parent / "none"), "x.onnx") == ()  # no ladder


def test_rung_text_names_the_rung_its_macs_and_measured_latency():
    assert rung_text(0, 3, "ladder/fast.onnx", {"macs": 1.2e8, "latency_ms": 4.25}) == \
        "rung 1/3 \u00b7 fast \u00b7 120.00M MACs \u00b7 4.2 ms measured"
    text = rung_text(2, 3, "x/compressed.onnx", {"rung": "default"})
    assert text == "rung 3/3 \u00b7 default \u00b7 ? MACs"  # no MACs, no latency: said, not invented


def test_the_slider_switches_the_compressed_pane_between_rungs_live(qtbot, ladder_dir):
    window = open_window(qtbot, ladder_dir / "original.onnx", ladder_dir / "compressed.onnx")
    try:
        slider = window.compute_slider
        assert slider.isVisible() and slider.slider.maximum() == 2 and slider.slider.value() == 1
        assert slider.label.text().startswith("rung 2/3")
        drag(qtbot, window.canvas, [(5, 5), (40, 30)])
        wait_rendered(qtbot, window)
        pane = window.panes["compressed"]
        frames_before = pane.frames
        slider.select(0)  # returns at once: the worker opens the rung on its thread
        fast = str(ladder_dir / "ladder" / "fast.onnx")
        assert window.paths["compressed"] == fast and window.pair_name == "facades"
        qtbot.waitUntil(lambda: window.engine_info.get("compressed", {}).get("path") == fast, timeout=30000)
        # the new rung re-renders the drawing (the same request id) as soon as it is open
        qtbot.waitUntil(lambda: pane.frames > frames_before, timeout=30000)
        assert pane.request_id == window.request_id and pane.status == ""
        assert "bench 1.5 ms" in pane.overlay_lines()[1]  # the rung's measured latency
        assert window.pair_actions["facades"].isChecked()  # still the facades pair
        assert "fast.onnx" in window.pane_captions["compressed"].text()
        window.open_model("compressed", str(ladder_dir / "original.onnx"))  # not a rung
        assert not slider.isVisible()
    finally:
        window.shutdown()


def test_the_benchmark_dialog_runs_the_whole_ladder(qtbot, ladder_dir):
    window = open_window(qtbot, ladder_dir / "original.onnx", ladder_dir / "compressed.onnx")
    try:
        dialog = window.benchmark_dialog()
        qtbot.addWidget(dialog)
        assert dialog.models == [window.paths["original"], window.paths["compressed"]]  # default: the panes
        assert not dialog.whole_ladder.isHidden()
        dialog.whole_ladder.setChecked(True)
        assert dialog.models == [window.paths["original"]] + list(window.compute_slider.paths)
        assert dialog.labels == ["original", "rung 1: fast", "rung 2: compressed", "rung 3: slow"]
        dialog.runs.setValue(2)
        dialog.warmup.setValue(0)
        with qtbot.waitSignal(dialog.worker.finished, timeout=60000):
            dialog.start_button.click()
        assert dialog.table.rowCount() == 4 and dialog.table.item(3, 0).text() == "rung 3: slow"
        assert dialog.results[1].speedup is not None  # against the original, the first row
        dialog.shutdown()
    finally:
        window.shutdown()


def test_a_rung_that_became_unreadable_is_reported_and_the_pane_keeps_its_model(qtbot, ladder_dir):
    window = open_window(qtbot, ladder_dir / "original.onnx", ladder_dir / "compressed.onnx")
    try:
        (ladder_dir / "ladder" / "fast.onnx").write_bytes(b"not an onnx file")
        window.compute_slider.select(0)
        assert window.errors and "fast.onnx" in window.errors[-1]
        assert window.paths["compressed"] == str(ladder_dir / "compressed.onnx")
        assert window.compute_slider.slider.value() == 1  # back on the rung that runs
    finally:
        window.shutdown()


def test_pick_rung_by_speed_or_name_and_measure_runs_on_the_fastest(ladder_dir, capsys):
    from app.measure import main as measure_main
    compressed = str(ladder_dir / "compressed.onnx")
    fast, slow = (str(ladder_dir / "ladder" / f"{name}.onnx") for name in ("fast", "slow"))
    # not every rung has a measured latency: MACs order them
    assert model_pairs.pick_rung(compressed, "fastest") == fast
    assert model_pairs.pick_rung(fast, "slowest") == slow  # any file of the pair names its ladder
    assert model_pairs.pick_rung(compressed, "slow") == slow
    assert model_pairs.pick_rung(compressed, "compressed") == compressed
    with pytest.raises(ValueError, match="no rung 'medium'.*rungs: fast, compressed, slow"):
        model_pairs.pick_rung(compressed, "medium")
    with pytest.raises(ValueError, match="ships no compute ladder"):
        model_pairs.pick_rung(str(ladder_dir.parent / "x" / "compressed.onnx"), "fastest")
    # with latency everywhere, latency decides (the slow rung is made the fastest here)
    with_metadata(compressed, ladder_dir / "compressed.onnx", latency_ms=3.0)
    with_metadata(slow, ladder_dir / "ladder" / "slow.onnx", latency_ms=0.5)
    assert model_pairs.pick_rung(compressed, "fastest") == slow
    assert measure_main(["--original", str(ladder_dir / "original.onnx"), "--compressed", compressed,
                         "--rung", "fast", "--seconds", "0.5", "--threads", "1"]) == 0
    assert f"compressed {fast}" in capsys.readouterr().out
    assert measure_main(["--compressed", compressed, "--rung", "medium"]) == 2
    assert "--rung medium: no rung 'medium'" in capsys.readouterr().err

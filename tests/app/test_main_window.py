"""The real window, headless: strokes, fill, undo/redo, live and manual rendering, stale-request
dropping, files, backends and model checks."""
import os
import threading

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QImage

from app.main_window import PANES
from app.palette_panel import INK, PAPER
from tests.app.helpers import click, drag, open_window, wait_rendered, with_metadata


@pytest.fixture
def window(qtbot, tiny_models):
    window = open_window(qtbot, tiny_models["original.onnx"], tiny_models["compressed.onnx"])
    yield window
    window.shutdown()


def test_window_shows_both_models_and_the_facades_palette(window):
    assert window.kind == "label" and window.palette.name == "facades"
    assert window.label_map.shape == (64, 64) and (window.label_map.ids == 1).all()  # background
    names = [name for _, name, _ in window.palette_panel.swatches]
    assert names[:3] == ["background", "facade", "window"] and "unused" not in names
    assert "untrained placeholder" in window.windowTitle() and window.banner.isVisible()
    for name in PANES:  # the canvas is blank: nothing is inferred, the pane says so
        lines = window.panes[name].overlay_lines()
        assert lines[0].startswith("onnxruntime on cpu")
        assert "MACs" in lines[1] and lines[2] == "blank canvas: draw to render"
        assert window.panes[name].image.size().width() == 64 and window.panes[name].frames == 0


def test_a_blank_canvas_is_never_sent_to_an_instance_norm_model(qtbot, window):
    """Every InstanceNorm of a constant input divides rounding noise by sqrt(eps): the output
    differed between PyTorch and ONNX Runtime by up to 2. The pane shows a plain frame instead,
    the same on every backend, and the first stroke renders for real."""
    first = window.panes["original"].image.copy()
    assert window.panes["original"].blank and first.pixelColor(10, 10).red() == 235
    drag(qtbot, window.canvas, [(5, 5), (30, 30)])
    wait_rendered(qtbot, window)
    for name in PANES:
        pane = window.panes[name]
        assert not pane.blank and pane.frames >= 1 and pane.total_ema.value_ms is not None
        assert "frames/s shown" in pane.overlay_lines()[2]
    window.clear_canvas()  # blank again: back to the plain frame
    wait_rendered(qtbot, window)
    assert all(window.panes[n].blank for n in PANES)


def test_digits_select_classes_and_strokes_render_in_both_panes(qtbot, window):
    qtbot.keyClick(window, Qt.Key.Key_3)  # third swatch: window (id 3)
    assert window.canvas.value == 3
    before = window.request_id
    drag(qtbot, window.canvas, [(5, 5), (20, 8), (40, 30)])
    painted = window.label_map.ids == 3
    assert painted.sum() > 40 and painted[5, 5] and painted[30, 40]
    assert window.request_id > before  # the release forced a render
    wait_rendered(qtbot, window)
    version, _ = window.request_log[window.request_id]
    assert version == window.label_map.version  # both panes show the final stroke
    for name in PANES:
        assert window.panes[name].frames >= 1  # the stroke (the blank start is not inferred)


def test_fill_rectangle_line_eraser_and_undo_redo(qtbot, window):
    qtbot.keyClick(window, Qt.Key.Key_R)  # rectangle tool
    qtbot.keyClick(window, Qt.Key.Key_2)  # facade
    drag(qtbot, window.canvas, [(10, 10), (30, 20), (50, 50)])  # the preview follows the drag
    ids = window.label_map.ids
    assert (ids[10:51, 10:51] == 2).all() and (ids == 2).sum() == 41 * 41
    qtbot.keyClick(window, Qt.Key.Key_F)
    qtbot.keyClick(window, Qt.Key.Key_4)  # door
    click(qtbot, window.canvas, 30, 30)
    assert (window.label_map.ids[10:51, 10:51] == 4).all() and window.label_map.ids[5, 5] == 1
    filled = window.label_map.snapshot()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (window.label_map.ids[10:51, 10:51] == 2).all()
    control_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier  # novermin
    qtbot.keyClick(window, Qt.Key.Key_Z, control_shift)
    np.testing.assert_array_equal(window.label_map.ids, filled)
    qtbot.keyClick(window, Qt.Key.Key_E)  # eraser paints the background class
    drag(qtbot, window.canvas, [(30, 12), (30, 48)])
    assert window.label_map.ids[30, 30] == 1
    drag(qtbot, window.canvas, [(20, 40), (20, 44)], button=Qt.MouseButton.RightButton)
    assert window.label_map.ids[42, 20] == 1  # right button erases with any tool
    assert window.label_map.history_depth == 4 and window.undo_action.isEnabled()
    wait_rendered(qtbot, window)


def test_wheel_and_slider_set_the_brush_size(qtbot, window):
    window.palette_panel.size_slider.setValue(20)
    assert window.canvas.brush_px == 20
    window.canvas.set_brush_size(5)  # what a wheel turn does
    assert window.palette_panel.size_slider.value() == 5


def test_live_off_renders_only_on_demand(qtbot, window):
    window.set_live(False)
    shown = window.panes["original"].request_id
    assert not window.panes["original"].stale
    drag(qtbot, window.canvas, [(5, 50), (60, 50)])
    qtbot.wait(300)
    assert window.panes["original"].request_id == shown
    assert all(window.panes[n].stale for n in PANES)  # the outputs say they are out of date
    assert any("stale" in line for line in window.panes["compressed"].overlay_lines())
    window.render_action.trigger()
    wait_rendered(qtbot, window)
    assert window.request_log[window.request_id][0] == window.label_map.version
    assert not any(window.panes[n].stale for n in PANES)


def test_stale_requests_are_dropped_and_drawing_never_waits(qtbot, tiny_models, slow_opener):
    opener, log = slow_opener  # 150 ms per inference
    window = open_window(qtbot, tiny_models["original.onnx"], tiny_models["compressed.onnx"],
                         opener=opener)
    rendered = {name: [] for name in PANES}
    for name in PANES:
        window.workers[name][0].rendered.connect(lambda rid, image, timings, n=name: rendered[n].append(rid))
    first = window.request_id + 1
    dropped_before = {name: window.workers[name][0].dropped for name in PANES}
    points = [(4 + 2 * i, 10 + i) for i in range(25)]
    to_widget = window.canvas.to_widget
    qtbot.mousePress(window.canvas, Qt.MouseButton.LeftButton, pos=to_widget(*points[0]).toPoint())
    for point in points[1:]:  # ~10 ms between mouse moves, so throttled requests pile up
        qtbot.mouseMove(window.canvas, to_widget(*point).toPoint())
        qtbot.wait(10)
    # a stroke event never waits for the 150 ms inference: no inference ran on the GUI thread
    assert not [event for event, thread in log if event == "run" and thread == threading.get_ident()]
    qtbot.mouseRelease(window.canvas, Qt.MouseButton.LeftButton, pos=to_widget(*points[-1]).toPoint())
    last = window.request_id
    wait_rendered(qtbot, window, timeout=10000)
    qtbot.wait(200)
    submitted = last - first + 1
    assert submitted >= 5
    for name in PANES:
        ids = rendered[name]
        assert ids[0] == first and ids[-1] == last  # the first stroke segment, then the newest
        assert len(ids) < submitted and ids == sorted(ids)
        assert window.workers[name][0].dropped - dropped_before[name] == submitted - len(ids)
    window.shutdown()


def test_save_and_load_label_map_round_trip(qtbot, window, tmp_path):
    window.canvas.stroke([(3, 3), (60, 60)], tool="brush", value=7)
    window.canvas.stroke([(10, 40), (30, 60)], tool="rectangle", value=12)
    drawn = window.label_map.snapshot()
    path = str(tmp_path / "drawn.png")
    window.save_label_map(path)
    assert QImage(path).format() == QImage.Format.Format_Indexed8
    window.clear_canvas()
    assert (window.label_map.ids == 1).all()
    window.open_label_map(path)
    np.testing.assert_array_equal(window.label_map.ids, drawn)
    window.undo()
    assert (window.label_map.ids == 1).all()  # opening a file is one undo step
    wait_rendered(qtbot, window)


def test_random_sample_outputs_and_composite(qtbot, window, tmp_path):
    path = window.random_sample()
    assert os.path.basename(path).startswith("cmp_b") and len(np.unique(window.label_map.ids)) > 4
    wait_rendered(qtbot, window)
    written = window.save_outputs(str(tmp_path / "out.png"))
    assert [os.path.basename(p) for p in written] == ["out_original.png", "out_compressed.png"]
    assert all(QImage(p).size().width() == 64 for p in written)
    sheet = window.composite_image()
    assert sheet.width() > 3 * sheet.height() * 0.8


def test_backend_switch_reopens_the_sibling_checkpoints(qtbot, window):
    window.set_backend("torch")  # original.onnx -> original.safetensors
    qtbot.waitUntil(lambda: len(window.engine_info) == 2, timeout=30000)
    assert {window.engine_info[n]["backend"] for n in PANES} == {"torch"}
    assert window.paths["original"].endswith("original.safetensors")
    wait_rendered(qtbot, window)


def test_incompatible_models_are_refused(qtbot, tiny_models, tmp_path):
    other = with_metadata(tiny_models["compressed.onnx"], tmp_path / "city.onnx", palette="cityscapes")
    from app.main_window import MainWindow
    with pytest.raises(ValueError, match="different palettes"):
        MainWindow(tiny_models["original.onnx"], str(other))


def test_sketch_models_get_a_pen_on_white_paper(qtbot, tiny_models, tmp_path):
    paths = [with_metadata(tiny_models[f"{n}.onnx"], tmp_path / f"{n}_sketch.onnx",
                           input_kind="sketch", palette=None) for n in PANES]
    window = open_window(qtbot, *paths)
    assert window.kind == "sketch" and (window.label_map.ids == PAPER).all()
    assert [v for v, _, _ in window.palette_panel.swatches] == [INK, PAPER]
    assert not window.tool_actions["fill"].isEnabled()
    drag(qtbot, window.canvas, [(10, 10), (50, 50)])
    assert window.label_map.ids[30, 30] == INK and window.label_map.ids[10, 50] == PAPER
    assert window.engine_info["original"]["mode"] == "sketch"
    wait_rendered(qtbot, window)
    window.shutdown()


def test_nan_and_wrong_size_outputs_are_flagged(qtbot, tiny_models):
    """Outputs that are NaN or of the wrong size used to be displayed and saved silently."""
    from tests.app.conftest import SlowEngine

    class BadEngine(SlowEngine):
        def _run(self, batch):
            out = np.zeros((1, 3) + batch.shape[2:], np.float32)
            if self.path.endswith("original.onnx"):
                out[:, :, :4] = np.nan
                return out
            return out[:, :, ::2, ::2]  # half the size the model claims

    def opener(path, backend=None, device=None, threads=None, **options):
        return BadEngine(path, 0.0, [])
    window = open_window(qtbot, tiny_models["original.onnx"], tiny_models["compressed.onnx"], opener=opener)
    original, compressed = window.panes["original"], window.panes["compressed"]
    assert "NaN or infinite" in original.problem
    assert any("bad output" in line for line in original.overlay_lines())
    assert compressed.problem == "output is 32x32, but the model runs at 64x64"
    assert "bad output" in window.statusBar().currentMessage()
    window.shutdown()


def test_errors_stay_until_dismissed_and_the_pointer_has_its_own_label(qtbot, window):
    window.show_error("Test", "something failed: see here")
    window._on_hover(3, 4, 1)  # a mouse move used to overwrite the error
    window.status_line.info("opened x", 5000)  # an info message waits behind it
    assert window.statusBar().currentMessage() == "something failed: see here"
    assert window.status_line.pointer.text().startswith("x 3, y 4: ")
    assert window.status_line.dismiss_button.isVisible()
    window.status_line.dismiss_button.click()
    assert window.statusBar().currentMessage() == "" and window.status_line.pending_error is None
    assert not window.status_line.dismiss_button.isVisible()


def test_a_model_of_another_resolution_rescales_the_drawing(qtbot, window, tiny_models, tmp_path):
    drag(qtbot, window.canvas, [(8, 8), (40, 8)])
    drawn = window.label_map.ids.copy()
    bigger = with_metadata(tiny_models["compressed.onnx"], tmp_path / "big.onnx", resolution=[128, 128])
    window.open_model("original", str(bigger))
    assert window.label_map.shape == (128, 128)
    assert (window.label_map.ids[::2, ::2] == drawn).all()  # nearest x2: the same drawing, not wiped
    assert "rescaled from 64x64 to 128x128" in window.statusBar().currentMessage()


def test_palette_panel_keeps_its_layout_and_every_facades_class_has_a_key(qtbot, window):
    panel = window.palette_panel
    count = panel._swatch_layout.count()
    for _ in range(3):
        window._setup_document(window.metadata["original"])
        window.request_id = 0  # force the swatches to be rebuilt, as a model switch does
        window._setup_document(window.metadata["original"])
    assert panel._swatch_layout.count() == count  # no spacer piles up per switch
    keys = [button.text().rsplit("[", 1)[-1].rstrip("]") for button in panel.buttons]
    assert keys == list("1234567890-=")[:len(panel.buttons)] and len(panel.buttons) == 12
    qtbot.keyClick(window, Qt.Key.Key_Equal)
    assert panel.selected_value == panel.swatches[11][0]


def test_auto_backend_after_torch_returns_to_the_opened_files(qtbot, window):
    window.set_backend("torch")
    qtbot.waitUntil(lambda: len(window.engine_info) == 2, timeout=30000)
    window.set_backend(None)  # "auto (from the file extension)"
    qtbot.waitUntil(lambda: len(window.engine_info) == 2, timeout=30000)
    assert {window.engine_info[n]["backend"] for n in PANES} == {"onnxruntime"}
    assert all(window.paths[n].endswith(".onnx") for n in PANES)


def test_random_weight_models_get_the_untrained_banner(qtbot, tiny_models, tmp_path):
    random_student = with_metadata(tiny_models["compressed.onnx"], tmp_path / "random.onnx",
                                   placeholder=None, random_weights=True)
    trained_teacher = with_metadata(tiny_models["original.onnx"], tmp_path / "teacher.onnx", placeholder=None)
    window = open_window(qtbot, trained_teacher, random_student)
    assert not window.banner.isHidden() and "Untrained compressed model" in window.banner.text()
    assert "export.onnx random" in window.banner.text() and "untrained" in window.windowTitle()
    window.shutdown()


def test_composite_captions_wrap_and_carry_the_latency(qtbot, window, tmp_path):
    drag(qtbot, window.canvas, [(5, 5), (30, 30)])
    wait_rendered(qtbot, window)
    sheet = window.composite_image()
    assert sheet.height() >= 256 + 54  # room for three caption lines under the images
    for name in PANES:
        assert window.panes[name].total_ema.value_ms is not None
    from app.window_files import _latency_text
    assert _latency_text(window.panes["original"]).endswith("ms per frame (EMA)")


def test_a_long_file_name_does_not_widen_its_pane(qtbot, tiny_models, tmp_path):
    long_name = tmp_path / ("a_very_long_model_file_name_" * 6 + ".onnx")
    long_name.write_bytes(open(tiny_models["compressed.onnx"], "rb").read())
    window = open_window(qtbot, tiny_models["original.onnx"], long_name)
    window.resize(1400, 600)
    qtbot.wait(50)
    widths = [window.panes[n].width() for n in PANES]
    assert abs(widths[0] - widths[1]) <= 2, widths
    assert window.pane_captions["compressed"].toolTip() == str(long_name)
    window.shutdown()

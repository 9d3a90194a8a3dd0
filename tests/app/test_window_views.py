"""The window's comparison views, headless: the difference view on the compressed pane and
"original renders on stroke end"."""
import math

import pytest

from app.main_window import PANES
from app.window_views import RELEASE_NOTE
from tests.app.helpers import drag, open_window, wait_rendered


@pytest.fixture
def window(qtbot, tiny_models):
    window = open_window(qtbot, tiny_models["original.onnx"], tiny_models["compressed.onnx"])
    yield window
    window.shutdown()


def test_difference_view_shows_a_heat_map_and_psnr_of_the_same_request(qtbot, window):
    pane = window.panes["compressed"]
    window.difference_action.trigger()  # View > Difference (Ctrl+D)
    assert pane.show_difference and window.differences.enabled
    drag(qtbot, window.canvas, [(5, 5), (40, 30)])
    wait_rendered(qtbot, window)
    qtbot.waitUntil(lambda: pane.difference_id == window.request_id, timeout=10000)
    assert pane.difference is not None and pane.difference.size() == window.panes["original"].image.size()
    psnr = pane.difference_psnr_db
    assert 0 < psnr < math.inf  # two different untrained models: different, finite
    assert any(line.startswith("|original \u2212 compressed| \u00b7 PSNR") for line in pane.overlay_lines())
    window.set_difference_view(False)
    assert not pane.show_difference
    assert not any("compressed|" in line for line in pane.overlay_lines())


def test_the_same_model_in_both_panes_is_identical(qtbot, tiny_models):
    window = open_window(qtbot, tiny_models["compressed.onnx"], tiny_models["compressed.onnx"])
    try:
        window.set_difference_view(True)
        drag(qtbot, window.canvas, [(5, 5), (40, 30)])
        wait_rendered(qtbot, window)
        pane = window.panes["compressed"]
        qtbot.waitUntil(lambda: pane.difference_id == window.request_id, timeout=10000)
        assert pane.difference_psnr_db == math.inf and "identical" in pane.difference_line()
    finally:
        window.shutdown()


def test_original_on_release_renders_the_original_only_when_the_stroke_ends(qtbot, window):
    window.release_action.trigger()  # View > Original renders on stroke end
    assert window.original_on_release
    sent = {name: [] for name in PANES}
    for name in PANES:
        worker = window.workers[name][0]
        original_submit = worker.submit
        worker.submit = lambda request, n=name, submit=original_submit: (
            sent[n].append(request.version), submit(request))
    drag(qtbot, window.canvas, [(5, 5), (15, 10), (25, 20), (35, 30), (45, 40)], pause_ms=60)
    wait_rendered(qtbot, window)
    final = window.label_map.version
    assert len(sent["compressed"]) >= 2  # live while drawing (throttled) and at the end
    assert sent["original"] == [final]  # once: the stroke's final state
    assert sent["compressed"][-1] == final
    assert not window.panes["original"].stale  # the final frame arrived


def test_original_catches_up_when_the_release_brings_no_new_edit(qtbot, window):
    window.set_original_on_release(True)
    drag(qtbot, window.canvas, [(5, 5), (30, 30)])
    wait_rendered(qtbot, window)
    # A throttled mid-stroke request that already holds the final map, then the release:
    request_id = window.submit_render(force=True, drawing=True)
    assert window.panes["original"].stale and window.panes["original"].stale_note == RELEASE_NOTE
    assert window.submit_render() == request_id  # the original gets that same request
    wait_rendered(qtbot, window)
    assert not window.panes["original"].stale
    assert window.submit_render() == -1  # both current: nothing to send

"""ResultPane: EMA latency, overlay text, ordering of frames, the frameShown signal."""
import time

import numpy as np
import pytest

from app.image_io import numpy_to_qimage
from app.result_pane import LatencyEma, ResultPane
from engines.bench_results import human_count


def test_latency_ema():
    ema = LatencyEma(weight=0.5)
    assert ema.add(100) == 100  # the first sample initialises it
    assert ema.add(50) == 75 and ema.add(75) == 75
    with pytest.raises(ValueError):
        LatencyEma(weight=0)


def test_human_count():
    assert human_count(2_546_204_672) == "2.55G" and human_count(356_867) == "356.87K"
    assert human_count(None, "?") == "?" and human_count(None) == "-" and human_count(12) == "12"


def test_pane_overlay_and_frame_order(qtbot):
    pane = ResultPane("Original")
    qtbot.addWidget(pane)
    pane.resize(300, 300)
    pane.show()
    assert pane.overlay_lines() == ["loading model..."]
    pane.set_engine_info({"backend": "onnxruntime", "device": "cpu",
                          "metadata": {"arch": "resnet_9blocks", "macs": 14.52e9, "params": 2.85e6}})
    image = numpy_to_qimage(np.zeros((8, 8, 3), np.uint8))
    with qtbot.waitSignal(pane.frameShown, timeout=5000) as shown:
        pane.show_result(5, image, {"infer_ms": 40.0, "total_ms": 50.0})
    assert shown.args[0] == 5
    pane.show_result(4, image, {"infer_ms": 1000.0, "total_ms": 1000.0})  # older: ignored
    lines = pane.overlay_lines()
    # one frame arrived within the last 2 s: 0.5 frames/s shown (not 1000 / 50 ms = "20 FPS")
    assert lines == ["onnxruntime on cpu \u00b7 resnet_9blocks", "MACs 14.52G \u00b7 params 2.85M",
                     "50.0 ms (EMA) \u00b7 infer 40.0 ms \u00b7 0.5 frames/s shown"]
    assert pane.shown_fps(now_s=time.perf_counter() + 5) == 0.0  # idle: nothing is being shown
    assert pane.request_id == 5 and pane.frames == 1

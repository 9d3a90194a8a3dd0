"""The latest-wins mailbox and the threaded worker: ownership, stale-request dropping, errors."""
import os
import sys
import threading

import numpy as np
import pytest
from PyQt6.QtGui import QImage

from app.inference_worker import (LatestMailbox, RenderRequest, lower_thread_priority, start_worker,
                                  stop_worker, WARMUP_RUNS)


def test_mailbox_keeps_only_the_newest_item_and_wakes_once():
    mailbox = LatestMailbox()
    assert mailbox.put(1)  # idle consumer: wake it
    assert not mailbox.put(2) and not mailbox.put(3)  # busy: replace, no second wake
    assert mailbox.dropped == 2
    assert mailbox.take() == 3
    assert not mailbox.put(4)  # still draining: the consumer takes it in its loop
    assert mailbox.take() == 4
    assert mailbox.take() is None  # drained: the consumer goes idle
    assert mailbox.put(5)


def canvas(value=2):
    return np.full((64, 64), value, np.uint8)


def test_worker_owns_its_engine_on_its_thread_and_drops_stale_requests(qtbot, slow_opener, tiny_models):
    opener, log = slow_opener
    worker, thread = start_worker("original", opener)
    rendered = []
    worker.rendered.connect(lambda request_id, image, timings: rendered.append((request_id, image, timings)))
    with qtbot.waitSignal(worker.opened, timeout=10000) as opened:
        worker.request_open(tiny_models["original.onnx"])
    assert opened.args[0]["backend"] == "fake" and opened.args[0]["mode"] == "color"
    runs = lambda: sum(event == "run" for event, _ in log)  # noqa: E731
    assert runs() == WARMUP_RUNS  # the warm-up, before any figure is shown
    worker.submit(RenderRequest(1, canvas(2)))
    qtbot.waitUntil(lambda: runs() == WARMUP_RUNS + 1, timeout=5000)  # request 1 is being rendered
    for request_id in range(2, 21):  # 19 more strokes while that inference takes 150 ms
        worker.submit(RenderRequest(request_id, canvas(1 + request_id % 12)))
    qtbot.waitUntil(lambda: bool(rendered) and rendered[-1][0] == 20, timeout=10000)
    qtbot.wait(400)  # nothing else may arrive
    ids = [r[0] for r in rendered]
    assert ids[0] == 1 and ids[-1] == 20 and ids == sorted(ids)  # the first, the newest, in order
    assert len(ids) <= 3 and worker.dropped + len(ids) == 20  # the rest dropped, none rendered late
    image, timings = rendered[-1][1], rendered[-1][2]
    assert isinstance(image, QImage) and (image.width(), image.height()) == (64, 64)
    assert timings["infer_ms"] >= 140 and timings["total_ms"] >= timings["infer_ms"]
    assert stop_worker(worker, thread)
    threads = {event: ident for event, ident in log}
    assert len({ident for _, ident in log}) == 1  # open, every run and close: one thread
    assert threads["open"] != threading.get_ident() and log[-1][0] == "close"


def test_open_failure_is_reported_not_raised(qtbot, tmp_path):
    worker, thread = start_worker("compressed")
    with qtbot.waitSignal(worker.failed, timeout=10000) as failed:
        worker.request_open(str(tmp_path / "missing.onnx"))
    assert "compressed: cannot open" in failed.args[0] and "missing.onnx" in failed.args[0]
    worker.submit(RenderRequest(1, canvas()))  # no engine: ignored, no crash
    assert stop_worker(worker, thread)


def test_bad_canvas_reports_an_inference_error_and_keeps_serving(qtbot, tiny_models):
    worker, thread = start_worker("compressed")
    with qtbot.waitSignal(worker.opened, timeout=20000):
        worker.request_open(tiny_models["compressed.onnx"], threads=1)
    with qtbot.waitSignal(worker.failed, timeout=10000) as failed:
        worker.submit(RenderRequest(1, canvas(40)))  # id 40 is not a facades class
    assert "inference failed" in failed.args[0]
    with qtbot.waitSignal(worker.rendered, timeout=10000) as rendered:
        worker.submit(RenderRequest(2, canvas(3)))
    assert rendered.args[0] == 2
    assert stop_worker(worker, thread)


def test_lower_thread_priority_affects_only_the_calling_thread():
    if not sys.platform.startswith("linux"):
        pytest.skip("nice is per thread on Linux only")
    result = {}

    def body():
        me = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, me)
        result["ok"] = lower_thread_priority(3)
        result["delta"] = os.getpriority(os.PRIO_PROCESS, me) - before

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert result == {"ok": True, "delta": 3}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    assert not lower_thread_priority(0)

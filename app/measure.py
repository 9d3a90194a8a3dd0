"""``python -m app.measure``: how live the app feels on this machine, measured, not guessed.

Drives the real window (offscreen by default) with synthetic mouse strokes at ~60 Hz for a few
seconds (QMouseEvents sent to the canvas like a real mouse's), and reports per pane:

- stroke-to-pixels latency: for every stroke event that changed the map, the time until the
  pane *paints* a frame rendered from that map version or a newer one (throttle wait + queueing
  + pre-process + inference + post-process + hand-over + paint), p50/p90/max;
- frames shown, stale requests dropped, and the engine latency;

and for the GUI thread the largest event-loop gap while drawing (a 4 ms probe timer records
when it fires; a gap far above 4 ms is a stall the user would feel as a stuck brush), plus the
time the canvas spent handling each mouse event.
"""
import argparse
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

PROBE_MS = 4


def percentiles(values: List[float]) -> Dict[str, Optional[float]]:
    if not values:
        return {"p50": None, "p90": None, "max": None, "n": 0}
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50": float(p50), "p90": float(p90), "max": float(max(values)), "n": len(values)}


def stroke_to_pixels_ms(events: List[Tuple[float, int]], frames: List[Tuple[float, int]]) -> List[float]:
    """For each (time, map version) event, ms until the first frame (time, version) showing that
    version or a newer one; events no frame covers (after the last) are left out."""
    latencies, start = [], 0
    for event_s, version in events:
        while start < len(frames) and (frames[start][0] < event_s or frames[start][1] < version):
            start += 1  # frames before this event, or of older maps, cannot show it
        if start == len(frames):
            break
        latencies.append((frames[start][0] - event_s) * 1e3)
    return latencies


def stroke_path(tick: int, width: int, height: int) -> Tuple[float, float]:
    """A smooth Lissajous path over the middle of the canvas, one point per tick."""
    phase = tick / 60.0
    return (width * (0.5 + 0.35 * math.sin(2 * math.pi * 0.7 * phase)),
            height * (0.5 + 0.35 * math.sin(2 * math.pi * 1.1 * phase + 0.5)))


def run_measurement(window, app, seconds: float, rate_hz: float, stroke_ticks: int = 45) -> Dict[str, Any]:
    """Drive ``window`` (models open) and return the figures (see the module docstring)."""
    from PyQt6.QtCore import QEvent, Qt
    from PyQt6.QtGui import QMouseEvent

    from app.main_window import PANES

    canvas = window.canvas
    frames: Dict[str, List[Tuple[float, int]]] = {name: [] for name in PANES}
    for name in PANES:
        window.panes[name].frameShown.connect(
            lambda request_id, shown_s, n=name: frames[n].append(
                (shown_s, window.request_log.get(request_id, (-1, 0.0))[0])))
    events: List[Tuple[float, int]] = []
    handler_ms: List[float] = []
    gaps_ms: List[float] = []
    state = {"tick": 0, "down": False, "last_probe": time.perf_counter(), "value_index": 0}
    height, width = canvas.label_map.shape
    swatches = [value for value, _, _ in window.palette_panel.swatches]
    dropped_before = {name: window.workers[name][0].dropped for name in PANES}

    def send(kind, x: float, y: float) -> None:
        position = canvas.to_widget(x, y)
        left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
        button = none if kind == QEvent.Type.MouseMove else left  # the button that changed
        held = none if kind == QEvent.Type.MouseButtonRelease else left  # buttons down after it
        event = QMouseEvent(kind, position, canvas.mapToGlobal(position), button, held,
                            Qt.KeyboardModifier.NoModifier)
        before, start = canvas.label_map.version, time.perf_counter()
        app.sendEvent(canvas, event)
        handler_ms.append((time.perf_counter() - start) * 1e3)
        if canvas.label_map.version != before:
            events.append((start, canvas.label_map.version))

    def tick() -> None:
        x, y = stroke_path(state["tick"], width, height)
        if not state["down"]:
            state["value_index"] += 1
            if swatches:  # a new class per stroke, so every stroke changes pixels
                window.palette_panel.select_index(state["value_index"] % len(swatches))
            send(QEvent.Type.MouseButtonPress, x, y)
            state["down"] = True
        elif state["tick"] % stroke_ticks == 0:
            send(QEvent.Type.MouseButtonRelease, x, y)
            state["down"] = False
        else:
            send(QEvent.Type.MouseMove, x, y)
        state["tick"] += 1

    def probe() -> None:
        now = time.perf_counter()
        gaps_ms.append((now - state["last_probe"]) * 1e3)
        state["last_probe"] = now

    window.set_tool("brush")
    canvas.set_brush_size(max(2, width // 24))
    idle_gaps_ms, drawing_s = _drive(app, tick, probe, gaps_ms, seconds, rate_hz)
    if state["down"]:
        send(QEvent.Type.MouseButtonRelease, *stroke_path(state["tick"], width, height))
    _wait_until_shown(window, app, frames)
    report: Dict[str, Any] = {
        "seconds": drawing_s, "rate_hz": rate_hz, "mouse_events": state["tick"],
        "map_changes": len(events), "requests": window.request_id,
        "gui": {"event_loop_gap_ms": percentiles(gaps_ms), "probe_ms": PROBE_MS,
                "idle_event_loop_gap_ms": percentiles(idle_gaps_ms),
                "mouse_handler_ms": percentiles(handler_ms)},
        "panes": {name: _pane_report(window, name, events, frames[name], drawing_s, dropped_before[name])
                  for name in PANES}}
    return report


def _spin(app, duration_s: float) -> float:
    """Run the event loop for ``duration_s``; the seconds it actually ran."""
    start = time.perf_counter()
    while time.perf_counter() - start < duration_s:
        app.processEvents()
        time.sleep(0.0005)
    return time.perf_counter() - start


def _drive(app, tick, probe, gaps_ms: List[float], seconds: float,
           rate_hz: float) -> Tuple[List[float], float]:
    """Probe the event loop for a second with nothing drawn (the baseline gaps, returned and
    cleared from ``gaps_ms``), then call ``tick`` at ``rate_hz`` for ``seconds`` while probing.
    Returns (baseline gaps, seconds of drawing)."""
    from PyQt6.QtCore import Qt, QTimer
    driver, prober = QTimer(), QTimer()
    driver.setTimerType(Qt.TimerType.PreciseTimer)
    prober.setTimerType(Qt.TimerType.PreciseTimer)
    driver.timeout.connect(tick)
    prober.timeout.connect(probe)
    prober.start(PROBE_MS)
    _spin(app, 1.0)
    idle_gaps_ms, gaps_ms[:] = list(gaps_ms), []
    driver.start(int(round(1000.0 / rate_hz)))
    drawing_s = _spin(app, seconds)
    driver.stop()
    prober.stop()
    return idle_gaps_ms, drawing_s


def _wait_until_shown(window, app, frames: Dict[str, List[Tuple[float, int]]], timeout_s: float = 30) -> None:
    """Process events until every pane shows the final label map (or ``timeout_s`` passes)."""
    final = window.label_map.version
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and not all(
            frames[n] and frames[n][-1][1] >= final for n in frames):
        app.processEvents()
        time.sleep(0.002)


def _pane_report(window, name: str, events: List[Tuple[float, int]], frames: List[Tuple[float, int]],
                 drawing_s: float, dropped_before: int) -> Dict[str, Any]:
    """One pane's figures: its model, stroke-to-pixels percentiles, frames shown and dropped."""
    info = window.engine_info.get(name, {})
    pane = window.panes[name]
    return {
        "model": info.get("path"), "backend": info.get("backend"), "device": info.get("device"),
        "arch": info.get("metadata", {}).get("arch"), "macs": info.get("metadata", {}).get("macs"),
        "stroke_to_pixels_ms": percentiles(stroke_to_pixels_ms(events, frames)),
        "frames_shown": len(frames), "shown_fps": len(frames) / drawing_s,
        "dropped_requests": window.workers[name][0].dropped - dropped_before,
        "infer_ema_ms": pane.infer_ema.value_ms, "total_ema_ms": pane.total_ema.value_ms}


def format_report(report: Dict[str, Any]) -> str:
    def ms(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.1f}"
    gui = report["gui"]
    load = report.get("load_average") or [float("nan")]
    lines = [f"models: original {report['panes'].get('original', {}).get('model')}, compressed "
             f"{report['panes'].get('compressed', {}).get('model')}",
             f"{report.get('cpu_count')} CPUs (1-min load average {load[0]:.1f}), "
             f"{report.get('threads_per_pane')} thread(s) per pane, inference nice "
             f"+{report.get('worker_nice')}",
             f"drew {report['seconds']:.1f} s at {report['rate_hz']:.0f} Hz: {report['mouse_events']} "
             f"mouse events, {report['map_changes']} map changes, {report['requests']} render requests",
             f"GUI thread: max event-loop gap {ms(gui['event_loop_gap_ms']['max'])} ms (p90 "
             f"{ms(gui['event_loop_gap_ms']['p90'])} ms, probe every {gui['probe_ms']} ms; idle "
             f"baseline max {ms(gui['idle_event_loop_gap_ms']['max'])} ms, p90 "
             f"{ms(gui['idle_event_loop_gap_ms']['p90'])} ms)",
             f"mouse handler (stroke event -> map updated) p50 {ms(gui['mouse_handler_ms']['p50'])} ms, "
             f"max {ms(gui['mouse_handler_ms']['max'])} ms",
             f"{'pane':<11} {'backend':<16} {'MACs':>7} {'infer ms':>9} {'s2p p50':>8} {'s2p p90':>8} "
             f"{'s2p max':>8} {'frames':>6} {'FPS':>5} {'dropped':>7}"]
    for name, pane in report["panes"].items():
        latency = pane["stroke_to_pixels_ms"]
        macs = f"{pane['macs'] / 1e9:.2f}G" if pane["macs"] else "-"
        lines.append(f"{name:<11} {(str(pane['backend']) + '/' + str(pane['device']))[:16]:<16} "
                     f"{macs:>7} {ms(pane['infer_ema_ms']):>9} {ms(latency['p50']):>8} "
                     f"{ms(latency['p90']):>8} {ms(latency['max']):>8} {pane['frames_shown']:>6} "
                     f"{pane['shown_fps']:>5.1f} {pane['dropped_requests']:>7}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.measure", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure stroke-to-pixels latency per pane and GUI-thread stalls while "
                    "drawing continuously with synthetic strokes (offscreen unless a platform is set).",
        epilog="examples:\n  python -m app.measure\n  python -m app.measure --seconds 5 --rate 60 "
               "--threads 1 --json measure.json\n  python -m app.measure --rung fastest --threads 1")
    parser.add_argument("--original", help="original model (default: as python -m app)")
    parser.add_argument("--compressed", help="compressed model (default: as python -m app)")
    parser.add_argument("--rung", help="compressed pane on a rung of the pair's compute ladder: fastest, "
                                       "slowest or its name (default: the default student)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", choices=("cpu", "cuda", "tensorrt"))
    parser.add_argument("--threads", type=int, help="CPU threads per pane (default half the cores)")
    parser.add_argument("--nice", type=int, default=None,
                        help="nice increment of the inference threads (default: as python -m app)")
    parser.add_argument("--seconds", type=float, default=4.0, help="drawing time (default 4)")
    parser.add_argument("--rate", type=float, default=60.0, help="mouse events per second (default 60)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--force", action="store_true", help="let --json replace a file")
    args = parser.parse_args(argv)
    if args.json and os.path.exists(args.json) and not args.force:
        print(f"error: {args.json} exists; pass --force to replace it", file=sys.stderr)
        return 2
    if args.seconds <= 0 or args.rate <= 0:
        print("error: --seconds and --rate must be positive", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from app import model_files
    from app.__main__ import WORKER_NICE, default_threads, wait_until
    default_original, default_compressed = model_files.default_models()
    original, compressed = args.original or default_original, args.compressed or default_compressed
    if args.rung:
        from app.model_pairs import pick_rung
        try:
            compressed = pick_rung(compressed, args.rung)
        except (OSError, ValueError) as error:
            print(f"error: --rung {args.rung}: {error}", file=sys.stderr)
            return 2
    from PyQt6.QtWidgets import QApplication

    from app.demo_drawing import draw_facade
    from app.main_window import PANES, MainWindow
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        window = MainWindow(original, compressed, backend=args.backend, device=args.device,
                            threads=args.threads or default_threads(),
                            worker_nice=WORKER_NICE if args.nice is None else args.nice)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    window.show()
    try:
        if not wait_until(app, lambda: len(window.engine_info) == len(PANES) or window.errors, 300):
            print("error: the models did not open within 300 s", file=sys.stderr)
            return 5
        if window.errors:
            print(f"error: {window.errors[0]}", file=sys.stderr)
            return 3
        if window.kind == "label" and window.palette is not None:
            draw_facade(window.canvas, window.palette)  # draw over a realistic map
        target = window.submit_render(force=True)
        wait_until(app, lambda: all(window.panes[n].request_id >= target for n in PANES), 120)
        report = run_measurement(window, app, args.seconds, args.rate)
    finally:
        window.shutdown()
    report["threads_per_pane"] = args.threads or default_threads()
    report["worker_nice"] = WORKER_NICE if args.nice is None else args.nice
    report["cpu_count"] = os.cpu_count()
    report["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(format_report(report))
    if args.json:
        temp = args.json + ".tmp"
        with open(temp, "w") as handle:
            json.dump(report, handle, indent=2)
        os.replace(temp, args.json)  # never a half-written file
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m app``: the interactive demo, the original and the compressed generator side by side.

Checks what can fail before any window opens (model files present, metadata readable, the two
models compatible, a display available) and reports it as one stderr line and an exit code.
``--screenshot`` renders the window offscreen with a drawn facade and both outputs and saves it.
"""
import argparse
import os
import sys
import time
from typing import List, Optional

EXIT_USAGE, EXIT_MODEL, EXIT_DISPLAY, EXIT_RUNTIME = 2, 3, 4, 5
# Measured with python -m app.measure on a 2-core machine shared with other jobs (load 6-10),
# five alternating runs each: nice +5 on the inference threads gave a median p90 event-loop gap
# of 7.5 ms vs 12.5 ms at +0 (max gaps were noise-dominated: 32 vs 29 ms). Nice only matters
# when cores are contended; on an idle machine it changes nothing.
WORKER_NICE = 5
EXAMPLES = """examples:
  python -m app                                    # default models (trained, else placeholders)
  python -m app --pair edges2shoes                 # a shipped pair by name (assets/models/<name>/)
  python -m app --original teacher.onnx --compressed student.onnx --threads 2
  python -m app --original t.engine --compressed s.engine          # Jetson, TensorRT, no torch
  python -m app --backend torch --original t.safetensors --compressed s.safetensors
  python -m app --screenshot docs/app-screenshot.png --force        # offscreen, no display needed
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw a label map (or a sketch) and watch the original and the compressed "
                    "generator render it live, side by side, with their latency and MACs.")
    parser.add_argument("--pair", help="open a model pair by name: a folder of assets/models holding "
                        "original.onnx and compressed.onnx (facades, edges2shoes, ...), or "
                        "'placeholders'; --original / --compressed override one side")
    parser.add_argument("--original", help="original (teacher) model: .onnx, .safetensors, .pth "
                        "or .engine (default: assets/models/facades, else build/placeholder_models)")
    parser.add_argument("--compressed", help="compressed (student) model, same formats")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"),
                        help="force a backend; sibling files with the backend's extension are used "
                             "(model.onnx -> model.safetensors); default: from the file extension")
    parser.add_argument("--device", choices=("cpu", "cuda", "tensorrt"),
                        help="device (default: the backend's: CPU for PyTorch/ONNX Runtime)")
    parser.add_argument("--threads", type=int,
                        help="CPU threads per pane (default: half the cores, so panes do not fight)")
    parser.add_argument("--nice", type=int, default=WORKER_NICE,
                        help=f"lower the inference threads' priority by this nice increment so "
                             f"drawing stays smooth when the cores are busy (Linux; default "
                             f"{WORKER_NICE}, 0 = same priority as the GUI)")
    parser.add_argument("--original-on-release", action="store_true",
                        help="while a stroke is drawn only the compressed model renders; the original "
                             "renders when the stroke ends (keeps a slow teacher usable; View menu)")
    parser.add_argument("--difference", action="store_true",
                        help="start with the difference view: the compressed pane shows a heat map of "
                             "|original - compressed| and its PSNR (View menu, Ctrl+D)")
    parser.add_argument("--sample", help="a label map / sketch file to start with")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="render offscreen (a drawn facade, or a sample sketch in sketch "
                             "mode), save the window as a full-colour PNG, exit")
    parser.add_argument("--force", action="store_true", help="let --screenshot replace a file")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds --screenshot waits for both outputs (default 180)")
    return parser


def has_display() -> bool:
    """Whether Qt can open windows: a non-Linux desktop, X11/Wayland, or an explicit platform."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# System libraries Qt >= 6.5's X11 (xcb) platform plugin loads, and their Debian/Ubuntu packages.
# Without them Qt aborts with a core dump and a generic hint; the app names what is missing.
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0", "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0", "xcb-randr": "libxcb-randr0", "xcb-xkb": "libxcb-xkb1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


def missing_xcb_packages() -> List[str]:
    """Debian packages whose libraries the xcb platform needs but the system lacks ([] when the
    app will not use xcb, e.g. offscreen, Wayland, macOS or Windows)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    uses_xcb = (sys.platform.startswith("linux") and os.environ.get("DISPLAY")
                and (platform.startswith("xcb") or (not platform and not os.environ.get("WAYLAND_DISPLAY"))))
    if not uses_xcb:
        return []
    import ctypes.util
    return [package for library, package in XCB_LIBRARIES.items()
            if ctypes.util.find_library(library) is None]


def default_threads() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def wait_until(app, condition, timeout_s: float) -> bool:
    """Run the event loop until ``condition()`` holds or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.005)
    return True


def take_screenshot(app, window, path: str, timeout_s: float) -> int:
    """Draw the demo facade (or load the sketch sample), wait for both panes, save the window."""
    from app.demo_drawing import draw_facade
    from app.image_io import write_image
    from app.main_window import PANES

    if not wait_until(app, lambda: len(window.engine_info) == len(PANES) or window.errors, timeout_s):
        print(f"error: the models did not open within {timeout_s:.0f} s", file=sys.stderr)
        return EXIT_RUNTIME
    if window.errors:
        print(f"error: {window.errors[0]}", file=sys.stderr)
        return EXIT_MODEL
    untouched = window.label_map.history_depth == 0  # --sample loads count as a touch
    if untouched and window.kind == "label" and window.palette is not None:
        draw_facade(window.canvas, window.palette)
    elif untouched and window.kind == "sketch":
        window.random_sample()
    target = window.submit_render(force=True)
    done = wait_until(app, lambda: all(window.panes[n].request_id >= target for n in PANES),
                      timeout_s)
    if not done:
        print(f"error: no output within {timeout_s:.0f} s", file=sys.stderr)
        return EXIT_RUNTIME
    for _ in range(3):  # let the panes paint the final frames and the overlays settle
        app.processEvents()
        time.sleep(0.05)
    from PyQt6.QtGui import QImage
    # Full colour: a 256-colour palette posterises the generated photos beyond recognition.
    shot = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    write_image(path, shot)
    print(f"wrote {path}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.screenshot and os.path.exists(args.screenshot) and not args.force:
        print(f"error: {args.screenshot} exists; pass --force to replace it", file=sys.stderr)
        return EXIT_USAGE
    if args.threads is not None and args.threads < 1:
        print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return EXIT_USAGE

    from app import model_files, model_pairs  # light: numpy, engines' factory; no Qt, no torch
    try:
        if args.pair:
            pair = model_pairs.find_pair(args.pair)
            default_original, default_compressed = pair.original, pair.compressed
        else:
            default_original, default_compressed = model_files.default_models()
        original, compressed = args.original or default_original, args.compressed or default_compressed
        original = model_files.resolve_for_backend(original, args.backend)
        compressed = model_files.resolve_for_backend(compressed, args.backend)
        metadata = [model_files.peek_metadata(path) for path in (original, compressed)]
        for path, meta in zip((original, compressed), metadata):
            model_files.require_kind(path, meta)  # a model without metadata is never guessed
        problem = model_files.compatibility_problem(*metadata)
        if problem:
            raise ValueError(problem)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL

    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display needed
    elif not has_display():
        print("error: no display (DISPLAY / WAYLAND_DISPLAY unset): run it on a desktop session, "
              "over `ssh -X`, or render offscreen with --screenshot out.png", file=sys.stderr)
        return EXIT_DISPLAY
    else:
        missing = missing_xcb_packages()
        if missing:
            print("error: Qt's X11 platform plugin needs system libraries that are missing; install "
                  f"them with: sudo apt install {' '.join(missing)}  (or render offscreen with "
                  "--screenshot out.png)", file=sys.stderr)
            return EXIT_DISPLAY

    from PyQt6.QtWidgets import QApplication

    from app.main_window import MainWindow
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("GAN Compression demo")
    window = None
    try:
        window = MainWindow(original, compressed, backend=args.backend, device=args.device,
                            threads=args.threads or default_threads(), worker_nice=args.nice,
                            original_on_release=args.original_on_release)
        window.set_difference_view(args.difference)
        if args.sample:
            window.open_label_map(args.sample)
    except (OSError, ValueError) as error:  # FileNotFoundError is an OSError
        if window is not None:
            window.shutdown()  # stop the worker threads: Qt aborts on running QThreads at exit
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL
    window.show()
    try:
        if args.screenshot:
            return take_screenshot(app, window, args.screenshot, args.timeout)
        return app.exec()
    finally:
        window.shutdown()


if __name__ == "__main__":
    sys.exit(main())

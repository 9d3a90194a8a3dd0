"""Latency benchmark of generators behind any engine: engine-only and end-to-end.

``python -m engines.bench teacher.onnx student.onnx --threads 2 --runs 50 --json out.json``

For each model it reports MACs and params (from the metadata), latency mean/p50/p90/p99 and
FPS of ``engine.infer`` alone and of the end-to-end path the app runs (pre-process a
canvas-sized label map / sketch / photo, infer, post-process to uint8 RGB), and the speedup of
each model over the first next to their MAC ratio. `run_benchmark` is the importable core
(the app's Benchmark menu calls it from a worker thread with a progress callback and a cancel
event); `main` wraps it with a tqdm bar, a table and JSON/CSV/PNG outputs, written atomically
and never over existing files without --force.
"""
import argparse
import contextlib
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from engines.base import Engine
from engines.bench_results import BenchResult, LatencyStats, format_table, write_csv, write_json, write_plot
from engines.factory import BACKEND_EXTENSIONS, extension_of, open_engine
from engines.preprocess import Preprocessor, make_preprocessor

# progress(done_steps, total_steps, message); cancel: a threading.Event or a callable -> bool.
ProgressCallback = Callable[[int, int, str], None]
CancelToken = Union[threading.Event, Callable[[], bool], None]


class BenchmarkCancelled(Exception):
    """Raised by `run_benchmark` when cancelled; ``results`` holds the finished models."""

    def __init__(self, results: List["BenchResult"]):
        super().__init__(f"benchmark cancelled after {len(results)} model(s)")
        self.results = results


# ----------------------------------------------------------------------------- inputs

def example_canvas(preprocessor: Preprocessor, size: Tuple[int, int], seed: int = 0) -> np.ndarray:
    """A real-looking canvas of the model's input kind at ``size`` (height, width): a
    facade-like label map of rectangles, a sketch of dark strokes on white, or a smooth photo
    with texture. Latency does not depend on pixel values, pre-processing cost barely does."""
    height, width = size
    rng = np.random.default_rng(seed)
    if preprocessor.takes_labels:
        palette = preprocessor.palette
        ids = list(palette.ids) if palette is not None else list(range(preprocessor.num_classes))
        background = palette.background_id if palette is not None else ids[0]
        others = [i for i in ids if i != background] or ids
        label_map = np.full((height, width), background, dtype=np.uint8)
        # a building block with a grid of windows and a door, like a facade label map
        top, left, bottom, right = height // 8, width // 10, height, width - width // 10
        label_map[top:bottom, left:right] = others[0]
        for row in range(top + height // 16, bottom - height // 6, max(height // 6, 2)):
            for col in range(left + width // 20, right - width // 12, max(width // 8, 2)):
                label_map[row:row + height // 12, col:col + width // 14] = others[(row + col) % len(others)]
        label_map[bottom - height // 5:bottom, width // 2 - width // 16:width // 2 + width // 16] = others[-1]
        return label_map
    if preprocessor.mode == "sketch":
        page = np.full((height, width), 255, dtype=np.uint8)
        center = (width // 2, height // 2)
        cv2.ellipse(page, center, (width // 3, height // 5), 0, 0, 360, 0, max(1, width // 128))
        cv2.line(page, (width // 6, height // 2), (width * 5 // 6, height * 2 // 3), 0, 1)
        cv2.polylines(page, [rng.integers(0, min(height, width), (6, 2)).astype(np.int32)],
                      False, 40, 1)
        return np.repeat(page[:, :, None], 3, axis=2)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    gradient = np.stack([x / width, y / height, 1 - x / width], axis=2) * 200
    noise = rng.normal(0, 12, (height, width, 3))
    return np.clip(gradient + noise + 25, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- running

def _is_cancelled(cancel: CancelToken) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _model_size(engine: Engine, size: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """(height, width) to run at: the exported shape, else ``size``, else the metadata's."""
    spec = engine.input_spec
    if not spec.dynamic:
        if size is not None and tuple(size) != (spec.height, spec.width):
            raise ValueError(f"{engine.path}: exported for {spec.height}x{spec.width}, cannot run "
                             f"at --size {size[0]}x{size[1]}; drop --size or export with --dynamic")
        return spec.height, spec.width  # type: ignore[return-value]
    if size is not None:
        if size[0] % spec.multiple_of or size[1] % spec.multiple_of:
            raise ValueError(f"{engine.path}: --size {size[0]}x{size[1]} must be a multiple of "
                             f"{spec.multiple_of}")
        return int(size[0]), int(size[1])
    return engine.resolution


def _scaled_macs(metadata: Dict[str, Any], size: Tuple[int, int]) -> Optional[int]:
    """The metadata's MACs, scaled when running at another size (conv MACs grow with area)."""
    macs = metadata.get("macs")
    if macs is None:
        return None
    native = metadata.get("resolution") or size
    return int(round(macs * size[0] * size[1] / (native[0] * native[1])))


class _Subject:
    """One model under test: its engine, its pre-processing and the samples gathered so far."""

    def __init__(self, engine: Engine, name: str, size: Optional[Tuple[int, int]],
                 canvas_size: Optional[Tuple[int, int]]):
        self.engine, self.name = engine, name
        self.model_size = _model_size(engine, size)
        self.prepare = make_preprocessor(engine.metadata, engine.input_spec, resolution=self.model_size)
        self.canvas_hw = tuple(canvas_size) if canvas_size else self.model_size
        self.canvas = example_canvas(self.prepare, self.canvas_hw)  # type: ignore[arg-type]
        self.batch = self.prepare(self.canvas)
        self.engine_ms: List[float] = []
        self.e2e_ms: List[float] = []

    def warm(self) -> None:  # lets the backend allocate, tune kernels and warm caches
        self.engine.infer(self.batch)

    def time_engine(self) -> None:
        self.engine.infer(self.batch)
        self.engine_ms.append(self.engine.last_latency_ms)  # type: ignore[arg-type]

    def time_end_to_end(self) -> None:
        start = time.perf_counter()
        output = self.engine.infer(self.prepare(self.canvas))
        self.prepare.to_image(output, self.canvas_hw)  # type: ignore[arg-type]
        self.e2e_ms.append((time.perf_counter() - start) * 1000.0)

    def result(self, runs: int, warmup: int, threads: Optional[int]) -> BenchResult:
        meta = self.engine.metadata
        return BenchResult(
            model=self.name, backend=self.engine.backend, device=self.engine.device,
            arch=meta.get("arch"), input_shape=tuple(int(v) for v in self.batch.shape),  # type: ignore[arg-type]
            canvas=self.canvas_hw, preprocess=self.prepare.mode,  # type: ignore[arg-type]
            macs=_scaled_macs(meta, self.model_size), params=meta.get("params"),
            engine=LatencyStats.from_samples(self.engine_ms),
            end_to_end=LatencyStats.from_samples(self.e2e_ms), runs=runs, warmup=warmup,
            threads=threads,
            extra={k: meta[k] for k in ("build", "true_macs", "palette", "input_kind") if k in meta})


def _measure(subjects: List[_Subject], warmup: int, runs: int, step: Callable[[str], None],
             cancel: CancelToken) -> bool:
    """Warm-up, engine-only and end-to-end runs. With several subjects the runs alternate
    between the models (round robin), so background load or thermal drift hits every model
    alike instead of whichever happened to run at that moment. False when cancelled."""
    for count, action, label in ((warmup, "warm", "warm-up"), (runs, "time_engine", "engine"),
                                 (runs, "time_end_to_end", "end-to-end")):
        for _ in range(count):
            for subject in subjects:
                if _is_cancelled(cancel):
                    return False
                getattr(subject, action)()
                step(f"{subject.name}: {label}")
    return True


def run_benchmark(models: Sequence[Union[str, Engine]], warmup: int = 10, runs: int = 50,
                  size: Optional[Tuple[int, int]] = None,
                  canvas_size: Optional[Tuple[int, int]] = None, threads: Optional[int] = None,
                  backend: Optional[str] = None, device: Optional[str] = None,
                  onnx_options: Optional[Dict[str, Any]] = None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: CancelToken = None, interleave: bool = True) -> List[BenchResult]:
    """Benchmark models, never concurrently (they would share the cores): by default the runs
    alternate between the models (``interleave``), else each model is measured in one go.

    Args:
        models: model paths (opened with `open_engine` and closed afterwards) or open Engines
            (left open: the caller owns them).
        warmup, runs: untimed warm-up runs, then timed runs (engine-only and end-to-end each).
        size: (height, width) input for dynamic models (default: the metadata's resolution).
        canvas_size: (height, width) of the end-to-end input canvas (default: the model size).
        threads, backend, device: passed to `open_engine` for paths.
        onnx_options: ONNX Runtime options for ``.onnx`` paths (``optimization``, ``spinning``).
        progress: called as ``progress(done_steps, total_steps, message)`` after every run.
        cancel: a ``threading.Event`` or a callable returning True to stop early.
        interleave: alternate runs between models (fair under background load); all models are
            open at once then. False measures one model after another.
    Returns:
        One `BenchResult` per model, in order, with speedups relative to the first.
    Raises:
        BenchmarkCancelled (with the finished results) when cancelled; ValueError /
        FileNotFoundError for unusable models or options.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    if not models:
        raise ValueError("no models to benchmark")
    total = len(models) * (warmup + 2 * runs)
    done = [0]

    def step(message: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total, message)

    with contextlib.ExitStack() as stack:
        subjects = []
        for model in models:
            if isinstance(model, Engine):
                engine, name = model, model.path
            else:
                is_onnx = extension_of(str(model)) in BACKEND_EXTENSIONS["onnxruntime"]
                options = dict(onnx_options or {}) if is_onnx else {}
                if is_onnx and interleave and len(models) > 1:
                    # Several sessions are open at once: threads of an idle session that spin
                    # (busy-wait) after its run would steal the cores of the next model's run.
                    options.setdefault("spinning", False)
                engine = stack.enter_context(open_engine(model, backend=backend, device=device,
                                                         threads=threads, **options))
                name = str(model)
            subjects.append(_Subject(engine, name, size, canvas_size))
        groups = [subjects] if interleave else [[subject] for subject in subjects]
        results: List[BenchResult] = []
        for group in groups:
            if not _measure(group, warmup, runs, step, cancel):
                raise BenchmarkCancelled(results)
            results.extend(subject.result(runs, warmup, threads) for subject in group)
            _compare_with_first(results)
    return results


def _compare_with_first(results: List[BenchResult]) -> None:
    first = results[0]
    for result in results:
        result.speedup = first.engine.mean_ms / result.engine.mean_ms
        if first.macs and result.macs:
            result.macs_ratio = first.macs / result.macs


# ----------------------------------------------------------------------------- CLI

def parse_size(text: str) -> Tuple[int, int]:
    """"256" -> (256, 256); "256x512" -> (256, 512) as height x width."""
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use 256 or HEIGHTxWIDTH like 256x512")
    return sizes[0], sizes[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engines.bench",
        description="Measure generator latency (engine-only and end-to-end with pre/post-"
                    "processing), MACs and params; compare every model with the first.",
        epilog="examples:\n"
               "  python -m engines.bench teacher.onnx student.onnx --threads 4\n"
               "  python -m engines.bench a.safetensors a.onnx --runs 100 --json out.json --plot out.png\n"
               "  python -m engines.bench student.engine --device cuda --csv trt.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help=".safetensors/.pth, .onnx or .engine/.plan files; the first is the baseline")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per mode (default 50)")
    parser.add_argument("--size", type=parse_size, help="HxW input of dynamic-shape models "
                        "(default: the model's resolution)")
    parser.add_argument("--canvas", type=parse_size, help="HxW canvas for end-to-end runs "
                        "(default: the model size)")
    parser.add_argument("--threads", type=int, help="intra-op CPU threads (default: backend's)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"),
                        help="force a backend (must fit the file extensions)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or tensorrt (default: cpu; GPU for .engine)")
    parser.add_argument("--optimization", choices=("disable", "basic", "extended", "all"),
                        default="all", help="ONNX Runtime graph optimisation level (default all)")
    spinning = parser.add_mutually_exclusive_group()
    spinning.add_argument("--no-spinning", action="store_true",
                          help="ONNX Runtime threads sleep instead of busy-waiting (shared CPUs)")
    spinning.add_argument("--spinning", action="store_true",
                          help="let ONNX Runtime threads busy-wait (default only for a single model "
                               "or --sequential: idle sessions would otherwise steal the cores)")
    parser.add_argument("--sequential", action="store_true",
                        help="measure one model after another instead of alternating runs between "
                             "models (alternating is fairer on a machine with background load)")
    parser.add_argument("--json", metavar="FILE", help="write settings, environment and results")
    parser.add_argument("--csv", metavar="FILE", help="write one row per model")
    parser.add_argument("--plot", metavar="FILE.png", help="write latency vs MACs as PNG")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    return parser


def _onnx_options(args: argparse.Namespace) -> Dict[str, Any]:
    options: Dict[str, Any] = {"optimization": args.optimization}
    if args.no_spinning or args.spinning:
        options["spinning"] = bool(args.spinning)
    return options


def unwritable(path: str) -> Optional[str]:
    """Why ``path`` cannot be written (None when it can): tried with a throw-away file in its
    folder, which also catches read-only file systems where permission bits say yes."""
    import tempfile
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    outputs = [p for p in (args.json, args.csv, args.plot) if p]
    existing = [p for p in outputs if os.path.exists(p)]
    if existing and not args.force:  # fail before minutes of measuring, not after
        print(f"error: {', '.join(existing)} exist(s); pass --force to overwrite", file=sys.stderr)
        return 2
    for path in outputs:
        problem = unwritable(path)
        if problem:
            print(f"error: cannot write {path}: {problem}; choose another path", file=sys.stderr)
            return 2
    from tqdm import tqdm

    bar = tqdm(total=1, unit="run", desc="benchmark", file=sys.stderr)

    def progress(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.set_description(os.path.basename(message), refresh=False)
        bar.update(done - bar.n)

    try:
        results = run_benchmark(args.models, warmup=args.warmup, runs=args.runs, size=args.size,
                                canvas_size=args.canvas, threads=args.threads,
                                backend=args.backend, device=args.device,
                                onnx_options=_onnx_options(args),
                                progress=progress, interleave=not args.sequential)
    except KeyboardInterrupt:
        bar.close()
        print("cancelled", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, ImportError) as error:
        bar.close()
        print(f"error: {error}", file=sys.stderr)
        return 2
    bar.close()
    print(format_table(results))
    settings = {k: v for k, v in vars(args).items() if k not in ("force",)}
    try:
        if args.json:
            write_json(args.json, results, settings, force=args.force)
        if args.csv:
            write_csv(args.csv, results, force=args.force)
        if args.plot:
            write_plot(args.plot, results, force=args.force)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in outputs:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

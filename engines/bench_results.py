"""Benchmark results and their reports: latency statistics, one model's `BenchResult`, the plain
text table, and the JSON / CSV / PNG files `engines.bench` writes (atomically, never over an
existing file without ``force``). Split from `engines.bench` so that the app's result panes can
format numbers without the benchmark's runners.
"""
import csv
import io
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np


@dataclass
class LatencyStats:
    """Latency statistics of timed runs, in milliseconds."""

    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    fps: float  # 1000 / mean_ms: sequential frames per second

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "LatencyStats":
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.size == 0:
            raise ValueError("no timed runs: runs must be >= 1")
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        mean = float(values.mean())
        return cls(mean, float(p50), float(p90), float(p99), float(values.min()),
                   1000.0 / mean if mean > 0 else float("inf"))


@dataclass
class BenchResult:
    """One model's benchmark. ``speedup`` and ``macs_ratio`` compare with the first model
    (its latency / this latency, its MACs / these MACs) and are 1.0 for the first."""

    model: str
    backend: str
    device: str
    arch: Optional[str]
    input_shape: Tuple[int, ...]
    canvas: Tuple[int, int]
    preprocess: str
    macs: Optional[int]
    params: Optional[int]
    engine: LatencyStats
    end_to_end: LatencyStats
    runs: int
    warmup: int
    threads: Optional[int]
    speedup: Optional[float] = None
    macs_ratio: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def row(self) -> Dict[str, Any]:
        """A flat dict (one CSV row)."""
        row = {k: v for k, v in asdict(self).items() if k not in ("engine", "end_to_end", "extra")}
        row["input_shape"] = "x".join(str(v) for v in self.input_shape)
        row["canvas"] = f"{self.canvas[0]}x{self.canvas[1]}"
        for prefix, stats in (("engine", self.engine), ("e2e", self.end_to_end)):
            row.update({f"{prefix}_{k}": v for k, v in asdict(stats).items()})
        return row


# ----------------------------------------------------------------------------- reporting

def format_table(results: Sequence[BenchResult]) -> str:
    """A plain-text table: MACs, params, engine and end-to-end latency, speedup vs MAC ratio."""
    header = (f"{'model':<28} {'backend':<16} {'input':>9} {'MACs':>8} {'params':>8} {'mean ms':>8} "
              f"{'p50':>7} {'p90':>7} {'p99':>7} {'FPS':>7} {'e2e ms':>7} {'e2e p90':>7} "
              f"{'speedup':>7} {'MACs x':>7}")
    lines = [header, "-" * len(header)]
    for r in results:
        name = os.path.basename(r.model)
        lines.append(
            f"{name[-28:]:<28} {(r.backend + '/' + r.device)[:16]:<16} {_size_text(r):>9} "
            f"{human_count(r.macs):>8} "
            f"{human_count(r.params):>8} {r.engine.mean_ms:8.2f} {r.engine.p50_ms:7.2f} "
            f"{r.engine.p90_ms:7.2f} {r.engine.p99_ms:7.2f} {r.engine.fps:7.1f} "
            f"{r.end_to_end.mean_ms:7.2f} {r.end_to_end.p90_ms:7.2f} "
            f"{_ratio(r.speedup):>7} {_ratio(r.macs_ratio):>7}")
    warning = resolution_warning(results)
    if warning:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def _size_text(result: BenchResult) -> str:
    return "x".join(str(v) for v in result.input_shape[-2:]) if len(result.input_shape) >= 2 else "?"


def resolution_warning(results: Sequence[BenchResult]) -> Optional[str]:
    """A note when the models ran at different input sizes: their speedup then mixes the
    resolution's cost with the architecture's (a 256x256 teacher vs a 128x128 student is 4x more
    pixels before any compression)."""
    sizes = {_size_text(r) for r in results}
    if len(sizes) <= 1:
        return None
    return (f"the models ran at different input sizes ({', '.join(sorted(sizes))}); speedups and MAC "
            "ratios compare resolutions as well as architectures. Use --size HxW (dynamic models) or "
            "models exported at one size for a like-for-like comparison")


def human_count(value: Optional[float], missing: str = "-") -> str:
    """2.55e9 -> "2.55G" (MACs, params); ``missing`` for None."""
    if value is None:
        return missing
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def environment() -> Dict[str, Any]:
    """Where the numbers came from (only backends already imported are asked for versions)."""
    info: Dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "machine": platform.machine(), "cpu_count": os.cpu_count()}
    for module in ("onnxruntime", "torch", "tensorrt"):
        if sys.modules.get(module) is not None:
            info[module] = getattr(sys.modules[module], "__version__", "?")
    return info


def _write_atomic(path: str, write: Callable[[str], None], force: bool) -> None:
    """``write(temp)`` then rename onto ``path`` (`compress.common.atomic`, so results get the usual
    permissions); never replaces a file without ``force``."""
    from compress.common.atomic import atomic_write
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    atomic_write(path, write, overwrite=True)


def _write_text(path: str, text: str, force: bool) -> None:
    def write(temp: str) -> None:
        with open(temp, "w", newline="") as handle:
            handle.write(text)
    _write_atomic(path, write, force)


def write_json(path: str, results: Sequence[BenchResult], settings: Dict[str, Any],
               force: bool = False) -> None:
    document = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": settings,
                "environment": environment(), "results": [asdict(r) for r in results]}
    warning = resolution_warning(results)
    if warning:
        document["warning"] = warning
    _write_text(path, json.dumps(document, indent=2) + "\n", force)


def write_csv(path: str, results: Sequence[BenchResult], force: bool = False) -> None:
    rows = [r.row() for r in results]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _write_text(path, buffer.getvalue(), force)


def write_plot(path: str, results: Sequence[BenchResult], force: bool = False,
               quality: Optional[Dict[str, float]] = None, quality_label: str = "quality") -> None:
    """PNG of latency (engine-only and end-to-end) against MACs, one labelled point per model;
    with ``quality`` ({model path: score}, e.g. a pair's validation mIoU) a second panel plots
    each scored model's quality against its engine latency."""
    # A bare Figure renders PNG through Agg without pyplot: no display, no global backend
    # switch (the Qt app may have one), safe off the GUI thread.
    from matplotlib.figure import Figure

    points = [r for r in results if r.macs]
    if not points:
        raise ValueError("cannot plot latency vs MACs: no model has MACs in its metadata")
    scored = [r for r in results if (quality or {}).get(r.model) is not None]
    figure = Figure(figsize=(11.5 if scored else 7, 4.5), dpi=110)
    panels = figure.subplots(1, 2 if scored else 1, squeeze=False)[0]
    _plot_latency_vs_macs(panels[0], points)
    if scored:
        _plot_quality_vs_latency(panels[1], scored, quality or {}, quality_label)
    figure.tight_layout()
    _write_atomic(path, lambda temp: figure.savefig(temp, format="png"), force)


def _plot_latency_vs_macs(axes, points: Sequence[BenchResult]) -> None:
    macs_g = [r.macs / 1e9 for r in points]  # type: ignore[operator]
    axes.scatter(macs_g, [r.engine.mean_ms for r in points], label="engine (infer)", marker="o")
    axes.scatter(macs_g, [r.end_to_end.mean_ms for r in points], label="end-to-end", marker="x")
    for r, x in zip(points, macs_g):
        axes.annotate(os.path.basename(r.model), (x, r.engine.mean_ms), fontsize=8,
                      textcoords="offset points", xytext=(4, 4))
    axes.set_xlabel("MACs (G, paper convention)")
    axes.set_ylabel("mean latency (ms)")
    targets = sorted({f"{r.backend} on {r.device}" for r in points})
    axes.set_title(f"{', '.join(targets)}, threads={points[0].threads or 'default'}")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend()


def _plot_quality_vs_latency(axes, scored: Sequence[BenchResult], quality: Dict[str, float],
                             label: str) -> None:
    latency = [r.engine.mean_ms for r in scored]
    values = [float(quality[r.model]) for r in scored]
    axes.scatter(latency, values, marker="o", color="tab:green")
    for r, x, y in zip(scored, latency, values):
        axes.annotate(os.path.basename(r.model), (x, y), fontsize=8, textcoords="offset points",
                      xytext=(4, 4))
    axes.set_xlabel("mean engine latency (ms)")
    axes.set_ylabel(label)
    axes.set_title("quality (measured offline) vs latency")
    axes.set_xlim(left=0)
    axes.grid(True, alpha=0.3)

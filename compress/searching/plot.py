"""A picture of a search population: quality against measured latency (or MACs) for every
evaluated sub-network, its Pareto front, and the sub-networks that ship marked by name.

    write_population_plot("docs/facades-ladder.png", rows, cost="latency_ms",
                          marked={"fast": fast_row, "default": default_row},
                          reference=("teacher", 92.9))

``rows`` are search-log rows (`compress.searching.results`); rows without the cost (e.g. logged
by a search that had no latency budget) are left out and counted in the subtitle. The metric
axis is the search's own (mIoU, FID, ...), scored on the held-out training pairs. With a
``reference`` cost (the teacher's latency) a second x axis reads the speedup over it. A marked
row without a value (a model trained outside the searched supernet) is a dotted line at its cost.
"""
from typing import Dict, Optional, Sequence, Tuple

from compress.common.atomic import atomic_write
from compress.searching.results import Row, higher_is_better, metric_of, pareto_front

METRIC_LABELS = {"miou": "mIoU (%)", "fid": "FID", "kid": "KID", "fidelity": "PSNR vs teacher (dB)"}
COST_LABELS = {"latency_ms": "measured latency (ms)", "macs": "MACs (G, paper convention)"}


def _cost_value(row: Row, cost: str) -> float:
    value = float(row[cost])
    return value / 1e9 if cost == "macs" else value


def write_population_plot(path: str, rows: Sequence[Row], cost: str = "latency_ms",
                          marked: Optional[Dict[str, Row]] = None,
                          reference: Optional[Tuple[str, float]] = None, title: str = "",
                          overwrite: bool = True) -> Dict[str, int]:
    """Write the PNG; returns {"plotted": n, "without_cost": m, "pareto": k}."""
    # A bare Figure renders through Agg without pyplot (no display, no global backend switch).
    from matplotlib.figure import Figure

    if cost not in COST_LABELS:
        raise ValueError(f"cost must be one of {', '.join(COST_LABELS)}, got {cost!r}")
    points = [row for row in rows if row.get(cost) is not None]
    if not points:
        raise ValueError(f"no row has {cost}: nothing to plot (latency is measured by a search with "
                         "budget_latency_ms)")
    metric = metric_of(points, "population")
    front = pareto_front(points, cost)
    figure = Figure(figsize=(7.5, 4.8), dpi=110)
    axes = figure.subplots()
    axes.scatter([_cost_value(r, cost) for r in points], [float(r["value"]) for r in points], s=10,
                 color="0.6", alpha=0.6, label=f"evaluated sub-networks ({len(points)})")
    axes.plot([_cost_value(r, cost) for r in front], [float(r["value"]) for r in front], "-",
              color="tab:blue", linewidth=1.2, label="Pareto front", drawstyle="steps-post")
    xs = [_cost_value(r, cost) for r in points]
    right = min(xs) + 0.7 * (max(xs) - min(xs))  # labels of points beyond this go to the left
    points_marked: Dict[str, Tuple[Row, list]] = {}  # one star per config: "quality = fast" if shared
    for name, row in sorted((marked or {}).items(), key=lambda item: float(item[1][cost])):
        points_marked.setdefault(row["config"], (row, []))[1].append(name)
    for config, (row, names) in points_marked.items():
        x = _cost_value(row, cost)
        if row.get("value") is None:  # a marked model without a score here (trained elsewhere): its cost
            axes.axvline(x, linestyle=":", color="tab:red", linewidth=1.2)
            axes.annotate(f"{' = '.join(names)} (not scored)\n{config}", (x, 0.02), fontsize=7,
                          xycoords=("data", "axes fraction"), ha="left", xytext=(4, 0),
                          textcoords="offset points")
            continue
        y = float(row["value"])
        axes.scatter([x], [y], marker="*", s=160, color="tab:red", zorder=3)
        axes.annotate(f"{' = '.join(names)}\n{config}", (x, y), fontsize=7,
                      textcoords="offset points", ha="right" if x > right else "left",
                      xytext=(-6 if x > right else 6, -16 if higher_is_better(metric) else 6))
    axes.set_xlabel(COST_LABELS[cost])
    axes.set_ylabel(METRIC_LABELS.get(metric, metric) + " on held-out training pairs")
    missing = len(rows) - len(points)
    subtitle = f" ({missing} logged without {cost})" if missing else ""
    axes.set_title((title or "search population") + subtitle, fontsize=10, pad=28 if reference else 6)
    if reference is not None:  # after the data, so that the axis limits are final
        _add_speedup_axis(axes, cost, reference)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="lower right" if higher_is_better(metric) else "upper right")
    figure.tight_layout()
    atomic_write(path, lambda temp: figure.savefig(temp, format="png"), overwrite=overwrite)
    return {"plotted": len(points), "without_cost": missing, "pareto": len(front)}


def _add_speedup_axis(axes, cost: str, reference: Tuple[str, float]) -> None:
    """A top axis reading ``reference cost / cost`` (the speedup over, e.g., the teacher)."""
    name, reference_cost = reference
    scale = reference_cost / 1e9 if cost == "macs" else float(reference_cost)
    if not scale > 0:
        raise ValueError(f"the reference {name} needs a positive {cost}, got {reference_cost}")
    # x -> scale / x is its own inverse
    top = axes.secondary_xaxis("top", functions=(_reciprocal(scale), _reciprocal(scale)))
    low, high = axes.get_xlim()
    ticks = [t for t in (1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30)
             if low < scale / t < high]  # readable speedups only: the axis is reciprocal
    top.set_xticks(ticks)
    top.set_xticklabels([f"{t:g}x" for t in ticks])
    top.set_xlabel(f"speedup over the {name} ({reference_cost:.4g}"
                   f"{' ms' if cost == 'latency_ms' else ' MACs'})", fontsize=8)


def _reciprocal(scale: float):
    import numpy as np

    def convert(x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(x > 0, scale / np.maximum(x, 1e-12), np.inf)
    return convert

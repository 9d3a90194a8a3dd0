"""Result tables of the compression search: the resumable log, merging, Pareto front, selection.

A search writes one row per evaluated sub-network:

    {"config": "16_16_32_16_32_32_16_16", "macs": 2548039680, "true_macs": ..., "params": 357011,
     "latency_ms": 3.1 (or null), "metric": "fid", "value": 65.2, "shard": 0 (or null), ...}

While it runs, rows are appended to a JSON-lines log (one ``write`` + fsync per row), so an
interrupted search loses at most the candidate it was evaluating: a torn last line is dropped
when the log is read back, and a rerun skips every config already in the log. At the end the
rows are written as one JSON table (a list, best first) with `write_table` (atomically).

`pareto_front` keeps the rows no other row beats in both cost (MACs or latency) and metric;
`select_best` picks the best row under a budget, like upstream ``select_arch.py``. The
``python -m compress.search merge | select`` command lines are in ``compress/search.py``.
"""
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from compress.common.atomic import atomic_write_text

Row = Dict[str, Any]

# Whether a larger metric value is better (FID/KID: lower; mIoU, teacher-fidelity PSNR: higher).
HIGHER_IS_BETTER = {"fid": False, "kid": False, "miou": True, "fidelity": True}
COSTS = ("macs", "latency_ms")


def higher_is_better(metric: str) -> bool:
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown search metric {metric!r}; valid: {', '.join(HIGHER_IS_BETTER)}")
    return HIGHER_IS_BETTER[metric]


def sort_key(metric: str):
    """Key that sorts rows best first (ties: cheaper first, then by config string)."""
    sign = -1.0 if higher_is_better(metric) else 1.0
    return lambda row: (sign * float(row["value"]), float(row.get("macs") or 0), row["config"])


# ----------------------------------------------------------------------------- the append-only log

def append_row(path: str, row: Row) -> None:
    """Append one row to the JSON-lines log durably (a crash leaves at most a torn last line)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    line = (json.dumps(row, sort_keys=True) + "\n").encode("utf-8")
    with open(path, "ab", buffering=0) as handle:  # unbuffered: the row goes out in one write
        handle.write(line)
        os.fsync(handle.fileno())


def read_log(path: str) -> List[Row]:
    """Rows of a JSON-lines log; a torn last line (interrupted write) is dropped and cut off the
    file so that later appends start on a fresh line. A missing file is an empty log."""
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as handle:
        data = handle.read()
    rows: List[Row] = []
    offset = 0
    for raw in data.splitlines(keepends=True):
        try:
            row = json.loads(raw.decode("utf-8"))
            if not isinstance(row, dict) or "config" not in row:
                raise ValueError("not a result row")
        except ValueError:
            if offset + len(raw) == len(data) and not raw.endswith(b"\n"):  # torn last line
                with open(path, "r+b") as handle:
                    handle.truncate(offset)
                break
            raise ValueError(f"{path}: line {len(rows) + 1} is not a search result row; the file is "
                             "damaged: remove that line (or the file, to search again)") from None
        rows.append(row)
        offset += len(raw)
    if rows and offset == len(data) and not data.endswith(b"\n"):  # whole row, newline lost
        with open(path, "ab") as handle:
            handle.write(b"\n")
    return rows


# ----------------------------------------------------------------------------- tables

def read_rows(path: str) -> List[Row]:
    """Rows of a results file: a JSON table (list) or a JSON-lines log."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such results file (python -m compress.search writes "
                         "<output_dir>/search_results.json)")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
    else:
        rows = read_log(path)
    if not all(isinstance(r, dict) and "config" in r and "value" in r for r in rows):
        raise ValueError(f"{path}: expected a list of search result rows with config and value")
    return rows


def metric_of(rows: Sequence[Row], where: str = "results") -> str:
    metrics = sorted({str(r["metric"]) for r in rows})
    if len(metrics) != 1:
        raise ValueError(f"{where}: rows mix metrics {metrics}; compare one metric at a time")
    return metrics[0]


def merge_rows(tables: Iterable[Sequence[Row]]) -> List[Row]:
    """Union of several tables (e.g. shards), one row per config (the first seen), best first."""
    merged: Dict[str, Row] = {}
    for rows in tables:
        for row in rows:
            merged.setdefault(row["config"], row)
    rows = list(merged.values())
    if not rows:
        return []
    return sorted(rows, key=sort_key(metric_of(rows)))


def write_table(path: str, rows: Sequence[Row]) -> None:
    """Write rows as an indented JSON list, atomically (replacing an older table)."""
    atomic_write_text(path, json.dumps(list(rows), indent=1, sort_keys=True) + "\n", overwrite=True)


# ----------------------------------------------------------------------------- Pareto and selection

def _check_cost(rows: Sequence[Row], cost: str) -> None:
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    missing = [r["config"] for r in rows if r.get(cost) is None]
    if missing:
        raise ValueError(f"{len(missing)} row(s) have no {cost} (e.g. {missing[0]}); "
                         + ("search with a latency budget to measure it" if cost == "latency_ms"
                            else "the table is damaged"))


def pareto_front(rows: Sequence[Row], cost: str = "macs") -> List[Row]:
    """The non-dominated rows in (``cost``, metric), cheapest first: no other row is at most as
    expensive and at least as good with one of the two strictly better."""
    if not rows:
        return []
    _check_cost(rows, cost)
    higher = higher_is_better(metric_of(rows))
    sign = -1.0 if higher else 1.0  # minimise sign * value
    ordered = sorted(rows, key=lambda r: (float(r[cost]), sign * float(r["value"]), r["config"]))
    front: List[Row] = []
    best = float("inf")
    for row in ordered:
        score = sign * float(row["value"])
        # strictly better than every row at most as expensive (rows of equal cost come best
        # first, so a tie in cost keeps only the best of them)
        if score < best:
            front.append(row)
            best = score
    return front


def within_latency(latency_ms: Optional[float], budget_ms: float, min_ms: Optional[float] = None) -> bool:
    """Whether a timed latency lies in the window [min_ms, budget_ms] (no lower end without
    ``min_ms``); an untimed one (None) never does."""
    return latency_ms is not None and (min_ms or 0.0) <= float(latency_ms) <= budget_ms


def select_best(rows: Sequence[Row], macs: Optional[float] = None,
                latency_ms: Optional[float] = None) -> Row:
    """The best row (by its metric) with ``macs`` <= the MACs budget and/or ``latency_ms`` <=
    the latency budget. ValueError naming the cheapest candidate when none fits."""
    if not rows:
        raise ValueError("no search results to select from")
    metric = metric_of(rows)
    fitting = list(rows)
    for cost, budget in (("macs", macs), ("latency_ms", latency_ms)):
        if budget is None:
            continue
        _check_cost(rows, cost)
        cheapest = min(rows, key=lambda r: float(r[cost]))
        fitting = [r for r in fitting if float(r[cost]) <= budget]
        if not fitting:
            raise ValueError(f"no searched config has {cost} <= {budget:g}; the cheapest is "
                             f"{cheapest['config']} with {cost} {float(cheapest[cost]):g}")
    return sorted(fitting, key=sort_key(metric))[0]


def _human(value: float) -> str:
    """5.7e9 -> '5.700G' (powers of 1000, as the paper writes MACs)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3f}{unit}"
    return f"{value:g}"


def format_row(row: Row) -> str:
    parts = [f"{row['config']:>28}", f"MACs {_human(float(row['macs'])):>8}"]
    if row.get("params") is not None:
        parts.append(f"params {_human(float(row['params'])):>8}")
    if row.get("latency_ms") is not None:
        parts.append(f"latency {float(row['latency_ms']):8.2f} ms")
    parts.append(f"{row['metric']} {float(row['value']):.4g}")
    return "  ".join(parts)


def format_table(rows: Sequence[Row], title: str = "") -> str:
    lines = [title] if title else []
    lines += [format_row(r) for r in rows]
    return "\n".join(lines)


def write_summary(path: str, summary: Dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(summary, indent=1, sort_keys=True) + "\n", overwrite=True)

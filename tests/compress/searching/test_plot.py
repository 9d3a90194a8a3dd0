"""compress.searching.plot: the population picture of a search (quality vs latency or MACs)."""
import random

import pytest

from compress.searching.plot import write_population_plot


def rows(count=40, seed=0):
    rng = random.Random(seed)
    return [{"config": f"c{i}", "metric": "miou", "value": 20 + 15 * rng.random(),
             "latency_ms": 3 + 20 * rng.random(), "macs": 1e8 * (1 + 5 * rng.random())} for i in range(count)]


def test_plot_counts_timed_rows_marks_rungs_and_reads_speedups(tmp_path):
    population = rows() + [{"config": "untimed", "metric": "miou", "value": 40.0, "latency_ms": None,
                            "macs": 1e8}]
    path = tmp_path / "ladder.png"
    counts = write_population_plot(str(path), population, marked={"fast": population[0]},
                                   reference=("teacher", 90.0))
    assert counts["plotted"] == 40 and counts["without_cost"] == 1 and 1 <= counts["pareto"] <= 40
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    macs = write_population_plot(str(tmp_path / "macs.png"), population, cost="macs")
    assert macs["plotted"] == 41  # every row has MACs


def test_plot_refuses_rows_without_the_cost_and_keeps_a_users_file(tmp_path):
    untimed = [dict(row, latency_ms=None) for row in rows(3)]
    with pytest.raises(ValueError, match="no row has latency_ms"):
        write_population_plot(str(tmp_path / "x.png"), untimed)
    with pytest.raises(ValueError, match="cost must be one of"):
        write_population_plot(str(tmp_path / "x.png"), rows(3), cost="params")
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        write_population_plot(str(mine), rows(3), overwrite=False)
    assert mine.read_bytes() == b"keep"


def test_a_marked_model_without_a_score_is_drawn_at_its_cost(tmp_path):
    population = rows()
    outside = {"config": "24_16_16_32_16_16_16_8", "metric": "miou", "value": None, "latency_ms": 12.0}
    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    write_population_plot(str(plain), population, marked={"fast": population[0]}, reference=("teacher", 90.0))
    both = {"fast": population[0], "default": outside}
    counts = write_population_plot(str(marked), population, marked=both, reference=("teacher", 90.0))
    assert counts["plotted"] == 40  # the unscored model is a marker, not a population point
    assert marked.read_bytes() != plain.read_bytes()

"""engines.bench: the CLI in-process on two tiny ONNX models, outputs, cancel and speedups.
No test asserts a latency value: only that the numbers are consistent."""
import csv
import json
import threading

import pytest

from engines.bench import (BenchmarkCancelled, LatencyStats, format_table, main, parse_size,
                           run_benchmark, write_json)
from engines.factory import open_engine


def test_cli_writes_table_json_csv_and_plot(tiny_models, tmp_path, capsys):
    teacher, student = str(tiny_models["teacher.onnx"]), str(tiny_models["student_dynamic.onnx"])
    out = {ext: tmp_path / f"bench.{ext}" for ext in ("json", "csv", "png")}
    argv = [teacher, student, "--warmup", "1", "--runs", "3", "--threads", "1", "--canvas", "128x128",
            "--json", str(out["json"]), "--csv", str(out["csv"]), "--plot", str(out["png"])]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "teacher.onnx" in table and "student_dynamic.onnx" in table and "1.00x" in table
    assert " 64x64 " in table and "warning" not in table  # one input size: nothing to warn about
    document = json.loads(out["json"].read_text())
    assert "warning" not in document
    first, second = document["results"]
    assert document["settings"]["runs"] == 3 and "onnxruntime" in document["environment"]
    assert first["macs"] == 64_151_552 and second["macs"] == 27_877_376
    assert first["speedup"] == 1.0 and first["macs_ratio"] == 1.0
    assert second["macs_ratio"] == pytest.approx(64_151_552 / 27_877_376)
    assert second["speedup"] == pytest.approx(first["engine"]["mean_ms"] / second["engine"]["mean_ms"])
    assert second["input_shape"] == [1, 3, 64, 64] and second["canvas"] == [128, 128]
    assert second["preprocess"] == "color"
    for result in (first, second):
        stats = result["engine"]
        assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
        assert stats["fps"] == pytest.approx(1000 / stats["mean_ms"])
        assert result["end_to_end"]["mean_ms"] > 0
    rows = list(csv.DictReader(out["csv"].read_text().splitlines()))
    assert [r["model"] for r in rows] == [teacher, student] and rows[0]["canvas"] == "128x128"
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_outputs_are_kept_without_force(tiny_models, tmp_path, capsys):
    target = tmp_path / "bench.json"
    target.write_text("keep me")
    argv = [str(tiny_models["student.onnx"]), "--warmup", "0", "--runs", "1", "--json", str(target)]
    assert main(argv) == 2
    assert "pass --force" in capsys.readouterr().err and target.read_text() == "keep me"
    assert main(argv + ["--force", "--optimization", "extended", "--no-spinning"]) == 0
    document = json.loads(target.read_text())
    assert document["results"][0]["runs"] == 1
    assert document["settings"]["optimization"] == "extended" and document["settings"]["no_spinning"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # no temp leftovers


def test_cli_reports_bad_models_and_sizes(tiny_models, tmp_path, capsys):
    assert main([str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx" in capsys.readouterr().err
    assert main([str(tiny_models["student.onnx"]), "--size", "96x96", "--runs", "1"]) == 2
    assert "exported for 64x64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tiny_models["student.onnx"]), "--size", "big"])
    assert parse_size("256x512") == (256, 512) and parse_size("64") == (64, 64)


def test_cancel_stops_and_returns_finished_models(tiny_models):
    paths = [str(tiny_models["student.onnx"]), str(tiny_models["teacher.onnx"])]
    cancel = threading.Event()
    seen = []

    def progress(done, total, message):
        seen.append((done, total, message))
        if "teacher" in message:  # the first model finished; stop during the second
            cancel.set()

    with pytest.raises(BenchmarkCancelled) as stopped:
        run_benchmark(paths, warmup=2, runs=4, threads=1, progress=progress, cancel=cancel,
                      interleave=False)
    assert [r.model for r in stopped.value.results] == [paths[0]]
    assert seen[-1][1] == 2 * (2 + 2 * 4) and seen[-1][0] == 2 + 2 * 4 + 1
    with pytest.raises(BenchmarkCancelled) as stopped:
        run_benchmark(paths, runs=2, cancel=lambda: True)
    assert stopped.value.results == []
    cancel.clear()
    with pytest.raises(BenchmarkCancelled) as stopped:  # interleaved: nothing is finished early
        run_benchmark(paths, warmup=2, runs=4, threads=1, progress=progress, cancel=cancel)
    assert stopped.value.results == []


def test_open_engines_are_benchmarked_and_left_open(tiny_models):
    with open_engine(tiny_models["student.safetensors"]) as torch_engine, \
            open_engine(tiny_models["student.onnx"]) as onnx_engine:
        results = run_benchmark([torch_engine, onnx_engine], warmup=1, runs=2, size=(64, 64))
        assert torch_engine.is_open and onnx_engine.is_open
    assert [r.backend for r in results] == ["torch", "onnxruntime"]
    assert results[1].macs_ratio == 1.0 and results[0].params == results[1].params == 38_723
    table = format_table(results).splitlines()
    assert len(table) == 4 and "student.safetensors" in table[2] and "student.onnx" in table[3]


def test_latency_stats_from_samples():
    stats = LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0])
    assert (stats.mean_ms, stats.p50_ms, stats.min_ms) == (2.5, 2.5, 1.0)
    assert stats.fps == pytest.approx(400.0)
    with pytest.raises(ValueError, match="runs must be >= 1"):
        LatencyStats.from_samples([])
    with pytest.raises(ValueError, match="runs must be >= 1"):
        run_benchmark(["x.onnx"], runs=0)


def test_runs_alternate_between_models_unless_sequential():
    from engines.base import Engine, InputSpec
    from engines.bench import run_benchmark

    order = []

    class Recorder(Engine):
        backend = "fake"

        def __init__(self, name):
            super().__init__(name)
            self.metadata = {"arch": "fake", "input_kind": "image", "resolution": [8, 8], "macs": 10}
            self.input_spec = InputSpec("input", 3, 8, 8)

        def _run(self, batch):
            order.append(self.path)
            return batch

    first, second = Recorder("a"), Recorder("b")
    run_benchmark([first, second], warmup=1, runs=2)
    assert order[:4] == ["a", "b", "a", "b"]
    order.clear()
    run_benchmark([first, second], warmup=1, runs=2, interleave=False)
    assert order == ["a"] * 5 + ["b"] * 5


def test_unwritable_outputs_are_refused_before_benchmarking(tiny_models, tmp_path, capsys, monkeypatch):
    import engines.bench as bench
    monkeypatch.setattr(bench, "run_benchmark", lambda *a, **k: pytest.fail("benchmarked anyway"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for flag in ("--json", "--csv"):
        assert main([str(tiny_models["student.onnx"]), flag, str(blocker / "out")]) == 2
        assert f"cannot write {blocker / 'out'}" in capsys.readouterr().err


def test_models_at_different_sizes_are_flagged(tiny_models, tmp_path, capsys):
    """A dynamic student run at 96x96 next to a 64x64 teacher: the table shows both sizes and
    warns that the speedup mixes resolution with architecture."""
    teacher, student = str(tiny_models["teacher.onnx"]), str(tiny_models["student_dynamic.onnx"])
    out = tmp_path / "mixed.json"
    results = run_benchmark([teacher], warmup=0, runs=1, threads=1) + run_benchmark(
        [student], warmup=0, runs=1, threads=1, size=(96, 96))
    table = format_table(results)
    assert " 64x64 " in table and " 96x96 " in table
    assert "warning: the models ran at different input sizes (64x64, 96x96)" in table
    write_json(str(out), results, {})
    assert "different input sizes" in json.loads(out.read_text())["warning"]

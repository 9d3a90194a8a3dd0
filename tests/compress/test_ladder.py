"""python -m compress.ladder: rungs searched under latency budgets in the pipeline's supernet,
fine-tuned, extracted and stamped with their latency; scores shared between rungs; resumption.
Latency is faked as MACs / 1e6 ms so that budgets and choices are deterministic."""
import json
import os

import pytest

from compress.ladder import LadderConfig, load_ladder, main
from compress.models.checkpoints import load_generator
from compress.models.profile import count_macs
from compress.searching.latency import LatencyMeasurer
from compress.searching.results import read_log, read_rows
from tests.conftest import DATASETS, REPO

FACADES = DATASETS / "facades" / "256"
SMOKE_PIPELINE = str(REPO / "configs" / "smoke_pipeline.toml")


def fake_latency_ms(self, model, size_hw):
    return count_macs(model, (1, model.input_nc, int(size_hw[0]), int(size_hw[1])))["macs"] / 1e6


@pytest.fixture
def pipeline_run(tmp_path):
    """The smoke teacher and a finished smoke pipeline (supernet, search, finetune, extract)."""
    from compress.pipeline import main as pipeline_main
    from compress.train import main as train_main
    if not FACADES.is_dir():
        pytest.skip(f"{FACADES} is absent (../shared/datasets is only present in CI)")
    teacher_dir = tmp_path / "teacher"
    assert train_main([str(REPO / "configs" / "smoke_pix2pix.toml"), f"--dataroot={FACADES}",
                       f"--output_dir={teacher_dir}", "--tensorboard=false"]) == 0
    argv = [SMOKE_PIPELINE, f"--output_dir={tmp_path / 'pipeline'}",
            f"--teacher={teacher_dir / 'G_final.safetensors'}", f"--dataroot={FACADES}"]
    assert pipeline_main(argv) == 0
    return tmp_path / "pipeline", argv


@pytest.mark.slow  # ~20 s: the smoke pipeline, then two rungs
def test_rungs_meet_their_budgets_share_scores_and_resume(pipeline_run, monkeypatch, capsys):
    out, argv = pipeline_run
    monkeypatch.setattr(LatencyMeasurer, "__call__", fake_latency_ms)
    ladder_argv = argv + ["--ladder.rungs=mid:2,fast:3.2"]
    assert main(ladder_argv) == 0
    summary = json.loads((out / "ladder" / "ladder.json").read_text())
    teacher_ms = summary["teacher_latency_ms"]
    assert teacher_ms == pytest.approx(load_generator(argv[2].split("=", 1)[1])[1]["macs"] / 1e6)
    rungs = {rung["name"]: rung for rung in summary["rungs"]}
    assert set(rungs) == {"default", "mid", "fast"}
    latencies = [rung["latency_ms"] for rung in summary["rungs"]]
    assert latencies == sorted(latencies, reverse=True)  # slowest first
    population = read_rows(str(out / "ladder" / "population.json"))
    for name, target in (("mid", 2.0), ("fast", 3.2)):
        rung = rungs[name]
        assert rung["speedup"] >= target and rung["latency_ms"] <= teacher_ms / target
        # the best of every rung's rows within the budget, fixed in choice.json
        within = [r for r in population
                  if r["latency_ms"] is not None and r["latency_ms"] <= teacher_ms / target]
        assert rung["value"] == max(r["value"] for r in within)
        choice = json.loads((out / "ladder" / name / "choice.json").read_text())
        assert choice["best"]["config"] == rung["config"]
        assert choice["best"]["latency_ms"] == rung["latency_ms"]
        model, meta = load_generator(rung["path"])
        assert meta["config"] == rung["config"] and meta["rung"] == name
        assert meta["latency_ms"] == pytest.approx(fake_latency_ms(None, model, meta["resolution"]), abs=1e-3)
        assert meta["speedup"] == pytest.approx(teacher_ms / meta["latency_ms"], abs=0.01)
        assert os.path.isfile(out / "ladder" / name / "finetune" / "finetuned.safetensors")  # fine-tuned
    default = json.loads((out / "search" / "search_summary.json").read_text())["best"]
    assert rungs["default"]["config"] == default["config"] and rungs["default"]["speedup_target"] is None
    # the fast rung's search started from every score of the pipeline's and the mid rung's searches
    def logged(*parts):
        return {r["config"] for r in read_log(str(out.joinpath(*parts, "search", "search_log.jsonl")))}
    earlier = logged() | logged("ladder", "mid")
    assert earlier <= logged("ladder", "fast")
    assert rungs["mid"]["value"] >= rungs["fast"]["value"]  # a looser budget never chooses worse
    assert {r["config"] for r in population} >= earlier
    assert all(r["latency_ms"] is not None for r in population)  # time_population: every row timed
    timed = {r["config"] for r in read_log(str(out / "ladder" / "fast" / "search" / "search_log.jsonl"))
             if r.get("latency_ms") is not None}
    assert timed <= {r["config"] for r in population if r["latency_ms"] is not None}
    assert (out / "ladder" / "quality_vs_latency.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "reusing" in printed and "compute ladder (teacher" in printed

    # a rung faster than the smallest sub-network (0.97M MACs: 4.78x) is refused before any search
    assert main(argv + ["--ladder.rungs=mid:2,turbo:6"]) == 2
    assert "rung turbo asks for 6x" in capsys.readouterr().err
    assert not (out / "ladder" / "turbo").exists()

    stages = {p: os.path.getmtime(p) for p in map(str, (out / "ladder").glob("*/*/*.safetensors"))}
    assert main(ladder_argv) == 0  # resumes: every stage of every rung is done
    assert {p: os.path.getmtime(p) for p in stages} == stages
    assert "running" not in capsys.readouterr().out

    # a range rung searches inside its window (min_latency_ms) and is chosen there
    assert main(ladder_argv[:-1] + ["--ladder.rungs=mid:2,fast:3.2,wide:1.3-2"]) == 0
    wide = json.loads((out / "ladder" / "wide" / "search" / "search_summary.json").read_text())
    assert wide["min_latency_ms"] == pytest.approx(teacher_ms / 2)
    choice = json.loads((out / "ladder" / "wide" / "choice.json").read_text())["best"]
    assert teacher_ms / 2 <= choice["latency_ms"] <= teacher_ms / 1.3
    capsys.readouterr()

    # a default student from outside the supernet: timed and stamped like a rung, without a score
    outside = str(out / "ladder" / "mid" / "compressed.safetensors")
    assert main(ladder_argv + [f"--ladder.default_student={outside}"]) == 0
    summary = json.loads((out / "ladder" / "ladder.json").read_text())
    default = {rung["name"]: rung for rung in summary["rungs"]}["default"]
    assert default["source"] == outside and default["value"] is None
    assert default["config"] == rungs["mid"]["config"] and default["latency_ms"] == rungs["mid"]["latency_ms"]
    assert load_generator(default["path"])[1]["rung"] == "default"
    assert "not searched here" in capsys.readouterr().out
    assert main(ladder_argv + [f"--ladder.default_student={out / 'nope.safetensors'}"]) == 2
    assert "nope.safetensors is missing" in capsys.readouterr().err


def test_ladder_settings_are_checked(tmp_path):
    assert LadderConfig(rungs=["fast:9", "slow:3.5"]).parsed_rungs() == [("fast", 9.0), ("slow", 3.5)]
    assert LadderConfig(rungs=["q-1:3-4", "f:9"]).rung_specs() == [("q-1", 3.0, 4.0), ("f", 9.0, None)]
    for rungs, message in ((["fast"], "name:speedup"), (["fast:0.5"], "speedup > 1"),
                           (["q:4-3"], "least-most"), (["q:3-"], "least-most"),
                           (["a b:3"], "plain name"), (["fast:9", "fast:4"], "unique"),
                           (["default:4"], "unique"), ([], "empty")):
        with pytest.raises(ValueError, match=message):
            LadderConfig(rungs=rungs).parsed_rungs()
    pipe, _, ladder = load_ladder(SMOKE_PIPELINE, ["--ladder.rungs=q:2", f"--output_dir={tmp_path}"])
    assert ladder.rungs == ["q:2"] and pipe.output_dir == str(tmp_path)


def test_a_ladder_without_a_supernet_says_to_run_the_pipeline(tmp_path, capsys):
    assert main([SMOKE_PIPELINE, f"--output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "supernet.safetensors is missing" in err and "python -m compress.pipeline" in err


def test_busy_cores_are_reported_before_timing(monkeypatch):
    from compress import ladder
    monkeypatch.setattr(ladder.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(ladder.os, "getloadavg", lambda: (2.1, 1.0, 1.0))
    assert "load average 2.1 on 2 cores" in ladder.busy_cores_warning(1)
    monkeypatch.setattr(ladder.os, "getloadavg", lambda: (1.2, 1.0, 1.0))  # our own thread + a little
    assert ladder.busy_cores_warning(1) == ""


def test_a_rung_with_a_speedup_range_takes_the_best_inside_it(tmp_path):
    from compress.ladder import RungLayout, choose_rung
    from compress.pipeline import Layout
    layout = RungLayout(str(tmp_path / "quality"), Layout(str(tmp_path)))
    os.makedirs(os.path.dirname(layout.search_done()))
    def row(config, value, latency_ms):
        return {"config": config, "metric": "miou", "value": value, "latency_ms": latency_ms, "macs": 1.0}
    own = row("b", 30.0, 25.0)
    with open(layout.search_done(), "w") as handle:
        json.dump({"best": own}, handle)
    pooled = [row("a", 40.0, 10.0), own, row("c", 20.0, 32.0), row("d", 35.0, 50.0)]
    # teacher 100 ms, "quality:3-4": between 25 and 33.3 ms; "a" scores best but is too fast
    assert choose_rung(layout, pooled, 100 / 3, print, floor_ms=100 / 4)["config"] == "b"
    assert json.loads((tmp_path / "quality" / "choice.json").read_text())["floor_latency_ms"] == 25.0
    os.remove(tmp_path / "quality" / "choice.json")
    assert choose_rung(layout, pooled, 100 / 3, print)["config"] == "a"  # without a floor
    os.remove(tmp_path / "quality" / "choice.json")
    with pytest.raises(ValueError, match="no timed sub-network .* between 33.00 and 33.33 ms"):
        choose_rung(layout, pooled, 100 / 3, print, floor_ms=33.0)


def test_a_rung_is_chosen_again_when_re_timing_moves_its_best_out_of_the_budget(tmp_path):
    from compress.ladder import RungLayout, choose_rung
    from compress.pipeline import Layout
    layout = RungLayout(str(tmp_path / "fast"), Layout(str(tmp_path)))
    os.makedirs(os.path.dirname(layout.search_done()))
    pooled = [{"config": c, "metric": "miou", "value": v, "latency_ms": ms, "macs": 1.0}
              for c, v, ms in (("lucky", 40.0, 9.0), ("steady", 35.0, 10.0), ("slow", 45.0, 20.0))]
    with open(layout.search_done(), "w") as handle:
        json.dump({"best": pooled[0]}, handle)
    careful = {"lucky": 13.0, "steady": 10.5}  # "lucky" was timed in a quiet moment
    best = choose_rung(layout, pooled, 11.0, print, confirm=careful.__getitem__)
    assert best["config"] == "steady" and best["latency_ms"] == 10.5
    choice = json.loads((tmp_path / "fast" / "choice.json").read_text())
    assert choice["confirmed_ms"] == {"lucky": 13.0, "steady": 10.5}
    assert pooled[0]["latency_ms"] == 13.0  # the population (plot, population.json) gets the median too


def test_remeasured_latency_is_the_median_of_every_timing_and_sticks(tmp_path):
    from compress.searching.latency import LatencyLUT, cached_latency, remeasured_latency
    timings = iter([9.0, 14.0, 12.0])

    class Measure:
        def describe(self):
            return {"backend": "fake", "device": "cpu", "threads": 1}

        def __call__(self, model, size_hw):
            return next(timings)

    lut, measure = LatencyLUT(str(tmp_path / "lut.json")), Measure()
    assert cached_latency(lut, measure, "8_8", (4, 4), lambda: None, "net")[0] == 9.0
    assert remeasured_latency(measure, lut, "8_8", (4, 4), lambda: None, "net", 2) == 12.0
    again = LatencyLUT(str(tmp_path / "lut.json"))
    assert cached_latency(again, measure, "8_8", (4, 4), lambda: None, "net") == (12.0, False)

"""python -m compress.search: exhaustive (resume, shards, merge), evolution, latency budget, select."""
import json

import pytest
import torch

from compress.models.checkpoints import save_generator
from compress.common.config import load_config
from compress.models import build_generator
from compress.search import SearchConfig, main, run_search
from compress.searching.candidates import CostModel
from compress.searching.results import read_log, read_rows
from tests.conftest import DATASETS

FACADES = DATASETS / "facades" / "256"
# 2 x 2 x 2 = 8 configs of an ngf-8 supernet: seconds on a CPU
TINY_CHOICES = ["8_4", "8_4", "8", "8", "8", "8", "8_4", "8"]


def tiny_checkpoints(folder):
    """(supernet path, teacher path): random ngf-8 networks with 3 blocks at 32x32."""
    torch.manual_seed(0)
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=8, n_blocks=3)
    teacher = build_generator("resnet_9blocks", ngf=8, n_blocks=3)
    paths = str(folder / "supernet.safetensors"), str(folder / "teacher.safetensors")
    for model, path in zip((supernet, teacher), paths):
        save_generator(model.eval(), path, resolution=(32, 32), palette="facades", input_kind="label")
    return paths


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))


def config(checkpoints, out, *extra, choices=TINY_CHOICES):
    supernet, teacher = checkpoints
    args = [f"--supernet={supernet}", f"--teacher={teacher}", f"--output_dir={out}", "--search_space=custom",
            f"--search_choices={json.dumps(choices)}", f"--dataroot={FACADES}", "--dataset_mode=labelmap",
            "--palette=facades", "--max_items=10", "--holdout_items=4", "--batch_size=4", "--metric=fidelity",
            "--device=cpu", *extra]
    return load_config(SearchConfig, None, args)


def macs_of(checkpoints, configs):
    from compress.models.search_space import load_supernet
    supernet, _ = load_supernet(checkpoints[0])
    cost = CostModel(supernet, (32, 32))
    return {c: cost.profile(c)["macs"] for c in configs}


ALL_TINY = [f"{a}_{b}_8_8_8_8_{c}_8" for a in (8, 4) for b in (8, 4) for c in (8, 4)]


def without_shard(rows):
    return [{k: v for k, v in r.items() if k != "shard"} for r in rows]


def test_exhaustive_search_resumes_and_shards_merge_to_the_same_table(checkpoints, tmp_path, capsys):
    macs = macs_of(checkpoints, ALL_TINY)
    budget = sorted(macs.values())[5]  # excludes the two most expensive configs
    fitting = {c for c, m in macs.items() if m <= budget}
    assert 5 <= len(fitting) < 8
    out = tmp_path / "full"
    cfg = config(checkpoints, out, "--strategy=exhaustive", f"--budget_macs={budget}")
    summary = run_search(cfg)
    rows = read_rows(str(out / "search_results.json"))
    assert {r["config"] for r in rows} == fitting
    assert all(r["macs"] == macs[r["config"]] <= budget and r["params"] > 0 for r in rows)
    assert all(r["metric"] == "fidelity" and 0 < r["value"] < 100 and r["latency_ms"] is None for r in rows)
    assert [r["value"] for r in rows] == sorted((r["value"] for r in rows), reverse=True)  # PSNR: best first
    assert summary["best"] == rows[0] and summary["evaluated"] == len(fitting)
    saved = json.loads((out / "search_summary.json").read_text())
    assert saved["best"]["config"] == rows[0]["config"] and saved["pareto"]
    assert "Pareto front (macs vs fidelity)" in capsys.readouterr().out

    # interrupted after two candidates, mid-way through writing the third: resumes from there
    log = out / "search_log.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2]) + lines[2][:25])
    again = run_search(cfg)
    assert again["resumed_rows"] == 2
    assert without_shard(read_rows(str(out / "search_results.json"))) == without_shard(rows)
    assert len(read_log(str(log))) == len(fitting)
    assert run_search(cfg)["resumed_rows"] == len(fitting)  # a finished search evaluates nothing
    assert len(log.read_text().splitlines()) == len(fitting)

    sharded = tmp_path / "sharded"
    tables = []
    for shard in (0, 1):
        shard_cfg = config(checkpoints, sharded, "--strategy=exhaustive", f"--budget_macs={budget}",
                           "--num_shards=2", f"--shard={shard}")
        run_search(shard_cfg)
        tables.append(str(sharded / f"search_results.shard{shard}of2.json"))
        assert all(r["shard"] == shard for r in read_rows(tables[-1]))
    merged, merged_summary = tmp_path / "merged.json", tmp_path / "search_summary.json"
    assert main(["merge", str(merged), *tables, "--summary", str(merged_summary)]) == 0
    assert without_shard(read_rows(str(merged))) == without_shard(rows)
    assert json.loads(merged_summary.read_text())["best"]["config"] == rows[0]["config"]
    assert main(["merge", str(merged), *tables]) == 2  # never overwrites without --force
    assert "exists" in capsys.readouterr().err
    cheap = sorted(macs.values())[2]  # a tighter budget at merge time keeps the 3 cheapest
    assert main(["merge", str(merged), *tables, f"--macs={cheap}", "--force"]) == 0
    assert {r["config"] for r in read_rows(str(merged))} == {c for c, m in macs.items() if m <= cheap}


def test_budget_below_the_smallest_config_names_its_macs(checkpoints, tmp_path, capsys):
    smallest = macs_of(checkpoints, ["4_4_8_8_8_8_4_8"])["4_4_8_8_8_8_4_8"]
    args = [f"--{k}={v}" for k, v in (("supernet", checkpoints[0]), ("teacher", checkpoints[1]),
                                     ("output_dir", tmp_path / "o"), ("search_space", "custom"),
                                     ("search_choices", json.dumps(TINY_CHOICES)), ("dataroot", FACADES),
                                     ("dataset_mode", "labelmap"), ("palette", "facades"),
                                     ("metric", "fidelity"), ("budget_macs", 1000),
                                     ("holdout_items", 4))]
    assert main(args) == 2
    message = capsys.readouterr().err
    assert "4_4_8_8_8_8_4_8" in message and f"{smallest:,}" in message and "budget_macs" in message


EVOLUTION_CHOICES = ["8_4", "8_4", "8_4", "8_4", "8", "8", "8_4", "8"]  # 32 configs


def evolution(checkpoints, out, budget, *extra):
    return config(checkpoints, out, "--strategy=evolution", f"--budget_macs={budget}", "--population=6",
                  "--seed=3", "--mutate_prob=0.5", *extra, choices=EVOLUTION_CHOICES)


def test_evolution_respects_the_budget_caches_and_is_reproducible(checkpoints, tmp_path):
    configs = [f"{a}_{b}_{c}_{d}_8_8_{e}_8" for a in (8, 4) for b in (8, 4) for c in (8, 4)
               for d in (8, 4) for e in (8, 4)]
    macs = macs_of(checkpoints, configs)
    budget = sorted(macs.values())[20]
    run_search(evolution(checkpoints, tmp_path / "a", budget, "--generations=4"))
    log_a = read_log(str(tmp_path / "a" / "search_log.jsonl"))
    assert all(r["macs"] == macs[r["config"]] <= budget for r in log_a)
    assert len({r["config"] for r in log_a}) == len(log_a) > 6  # cached: no config evaluated twice
    assert {r["generation"] for r in log_a} >= {0, 1}
    state = json.loads((tmp_path / "a" / "evolution_state.json").read_text())
    assert state["generation"] == 4 and len(state["history"]) == 5
    scores = [h["score"] for h in state["history"]]  # lower is better (negated PSNR): never worse
    assert all(later <= earlier for earlier, later in zip(scores, scores[1:]))
    table = read_rows(str(tmp_path / "a" / "search_results.json"))
    assert table[0]["config"] == state["history"][-1]["config"]

    # same seed, run in two sittings (1 generation, then resumed to 4): the same search
    run_search(evolution(checkpoints, tmp_path / "b", budget, "--generations=1"))
    run_search(evolution(checkpoints, tmp_path / "b", budget, "--generations=4"))
    log_b = read_log(str(tmp_path / "b" / "search_log.jsonl"))
    assert [(r["config"], r["value"]) for r in log_b] == [(r["config"], r["value"]) for r in log_a]
    assert json.loads((tmp_path / "b" / "evolution_state.json").read_text()) == state

    with pytest.raises(ValueError, match="other settings"):  # an evolution keeps its budget
        run_search(evolution(checkpoints, tmp_path / "b", budget * 2, "--generations=4"))


def test_latency_budget_measures_with_onnxruntime_and_reuses_the_lut(checkpoints, tmp_path):
    choices = ["8_4", "8", "8", "8", "8", "8", "8_4", "8"]
    lut = tmp_path / "lut.json"
    common = ("--strategy=exhaustive", "--budget_latency_ms=10000", f"--latency_lut={lut}",
              "--latency_warmup=1", "--latency_runs=3")
    summary = run_search(config(checkpoints, tmp_path / "a", *common, choices=choices))
    rows = read_rows(str(tmp_path / "a" / "search_results.json"))
    assert len(rows) == 4 and all(0 < r["latency_ms"] <= 10000 for r in rows)
    assert summary["latency_measurements"] == 4
    entries = json.loads(lut.read_text())["entries"]
    assert len(entries) == 4 and all(e["backend"] == "onnxruntime" and e["threads"] == 1
                                     for e in entries.values())
    again = run_search(config(checkpoints, tmp_path / "b", *common, choices=choices))
    assert again["latency_measurements"] == 0  # every latency came from the LUT
    assert [r["latency_ms"] for r in read_rows(str(tmp_path / "b" / "search_results.json"))] \
        == [r["latency_ms"] for r in rows]
    assert all(p["latency_ms"] is not None for p in again["pareto"])
    # a latency window (a ladder's slow rung): faster configs are outside the budget too
    floor = sorted(r["latency_ms"] for r in rows)[2]
    window = run_search(config(checkpoints, tmp_path / "c", *common, f"--min_latency_ms={floor}",
                               choices=choices))
    kept = read_rows(str(tmp_path / "c" / "search_results.json"))
    assert {r["config"] for r in kept} == {r["config"] for r in rows if r["latency_ms"] >= floor}
    assert window["min_latency_ms"] == floor and window["latency_measurements"] == 0
    with pytest.raises(ValueError, match="min_latency_ms .* needs a larger budget_latency_ms"):
        config(checkpoints, tmp_path / "d", "--min_latency_ms=5")


def rows_of(*triples, metric="fid"):
    return [{"config": c, "macs": m, "latency_ms": m / 1e6, "metric": metric, "value": v}
            for c, m, v in triples]


def test_pareto_front_and_selection_on_synthetic_rows():
    from compress.searching.results import pareto_front, select_best
    rows = rows_of(("a", 1e9, 50.0), ("b", 2e9, 40.0), ("c", 2e9, 45.0), ("d", 3e9, 41.0),
                   ("e", 4e9, 30.0), ("f", 0.5e9, 80.0), ("g", 4e9, 30.0))
    assert [r["config"] for r in pareto_front(rows)] == ["f", "a", "b", "e"]
    assert [r["config"] for r in pareto_front(rows, "latency_ms")] == ["f", "a", "b", "e"]
    assert select_best(rows, macs=2.5e9)["config"] == "b"
    assert select_best(rows, latency_ms=1000.0)["config"] == "a"
    with pytest.raises(ValueError, match="cheapest is f"):
        select_best(rows, macs=1e8)
    higher = rows_of(("a", 1e9, 0.3), ("b", 2e9, 0.5), ("c", 3e9, 0.4), metric="miou")
    assert [r["config"] for r in pareto_front(higher)] == ["a", "b"]
    assert select_best(higher, macs=5e9)["config"] == "b"


def test_select_cli(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(rows_of(("16_16_32_16_32_32_16_16", 2.5e9, 65.0),
                                       ("32_32_48_32_48_48_16_16", 5.0e9, 60.0),
                                       ("48_48_48_48_48_48_48_48", 9e9, 55.0))))
    assert main(["select", str(path), "--macs", "5.7e9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"] == "32_32_48_32_48_48_16_16"
    assert main(["select", str(path), "--latency-ms", "3000"]) == 0
    assert "16_16_32_16_32_32_16_16" in capsys.readouterr().out
    assert main(["select", str(path), "--macs", "1e9"]) == 2
    assert "cheapest is 16_16_32_16_32_32_16_16" in capsys.readouterr().err


def test_probed_macs_equal_full_size_profiles():
    from compress.models.profile import count_macs
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=16, n_blocks=3)
    cost = CostModel(supernet, (96, 128))
    assert cost.probe_hw == (12, 16)
    for config in ("16_8_16_8_16_8_16_8", "8_8_8_8_8_8_8_8", "16_16_16_16_16_16_16_16"):
        full = count_macs(supernet.make_subnet(config), (1, 3, 96, 128))
        assert cost.profile(config) == full
    spade = build_generator("super_mobile_spade", semantic_nc=5, ngf=4, crop_size=128,
                            num_upsampling_layers="normal")
    cost = CostModel(spade, (128, 128))
    assert cost.probe_hw == (64, 64)
    full = count_macs(spade.make_subnet("4_4_4_4_4_4_4_4"), (1, 5, 128, 128))
    assert cost.profile("4_4_4_4_4_4_4_4") == full


def test_torn_last_log_line_is_dropped_and_trimmed(tmp_path):
    from compress.searching.results import append_row
    log = tmp_path / "log.jsonl"
    append_row(str(log), {"config": "a", "value": 1.0})
    with open(log, "a") as handle:
        handle.write('{"config": "b", "val')
    assert [r["config"] for r in read_log(str(log))] == ["a"]
    append_row(str(log), {"config": "c", "value": 2.0})
    assert [r["config"] for r in read_log(str(log))] == ["a", "c"]
    with open(log, "a") as handle:  # a complete row whose newline was lost
        handle.write('{"config": "d", "value": 3.0}')
    assert [r["config"] for r in read_log(str(log))] == ["a", "c", "d"]
    append_row(str(log), {"config": "e", "value": 4.0})
    assert [r["config"] for r in read_log(str(log))] == ["a", "c", "d", "e"]
    log.write_text('{"config": "a"}\nnot json\n{"config": "c"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_log(str(log))


def test_the_held_out_split_defaults_to_the_supernets(checkpoints, tmp_path):
    from compress.searching.run import holdout_setting
    cfg = config(checkpoints, tmp_path, "--holdout_items=none")
    assert holdout_setting(cfg, {"holdout": {"items": 40, "seed": 2}}, print) == (40, 2)
    with pytest.raises(ValueError, match="never saw"):
        holdout_setting(cfg, {"holdout": {"items": 0, "seed": 0}}, print)
    notes = []
    explicit = config(checkpoints, tmp_path, "--holdout_items=8")
    assert holdout_setting(explicit, {"holdout": {"items": 40, "seed": 0}}, notes.append) == (8, 0)
    assert "may score images the supernet trained on" in notes[0]


def test_spade_candidates_are_calibrated_before_scoring(tmp_path, monkeypatch):
    import compress.distillation.calibration as calibration
    calibrated = []
    original = calibration.calibrate_batchnorm

    def counting(model, batches, config=None):
        calibrated.append((config, len(batches)))
        return original(model, batches, config=config)

    monkeypatch.setattr(calibration, "calibrate_batchnorm", counting)
    torch.manual_seed(0)
    supernet = build_generator("super_mobile_spade", semantic_nc=13, ngf=4, crop_size=64,
                               num_upsampling_layers="normal")
    teacher = build_generator("spade", semantic_nc=13, ngf=4, crop_size=64, num_upsampling_layers="normal")
    paths = str(tmp_path / "supernet.safetensors"), str(tmp_path / "teacher.safetensors")
    for model, path in zip((supernet, teacher), paths):
        save_generator(model.eval(), path, resolution=(64, 64), palette="facades", input_kind="label")
    cfg = config(paths, tmp_path / "out", "--strategy=exhaustive", "--input_encoding=onehot",
                 "--calibration_images=4", choices=["4", "4_2", "4", "4", "4", "4", "4", "4_2"])
    summary = run_search(cfg)
    rows = read_rows(str(tmp_path / "out" / "search_results.json"))
    assert len(rows) == 4 and summary["arch"] == "super_mobile_spade"
    assert all(0 < r["value"] < 100 for r in rows) and len({r["value"] for r in rows}) == 4
    # every candidate re-calibrated on 4 training images (one batch of 4), before it was scored
    assert sorted(calibrated) == sorted((r["config"], 1) for r in rows)


def test_fid_search_on_unpaired_data_scores_against_held_out_b_images(checkpoints, tmp_path):
    from tests.compress.training.test_engine import write_unaligned
    data = write_unaligned(tmp_path / "data", n=6, size=32)
    cfg = config(checkpoints, tmp_path / "out", "--strategy=exhaustive", "--metric=fid",
                 "--dataset_mode=unaligned", f"--dataroot={data}", "--palette=none", "--max_items=none",
                 "--holdout_items=3",
                 choices=["8_4", "8", "8", "8", "8", "8", "8", "8"])
    run_search(cfg)
    rows = read_rows(str(tmp_path / "out" / "search_results.json"))
    assert len(rows) == 2 and all(r["metric"] == "fid" and r["value"] > 0 and "kid" in r for r in rows)
    assert rows[0]["value"] <= rows[1]["value"]  # FID: lower is better, best first
    stats = list((tmp_path / "out" / "real_stats").glob("search_data_unaligned_AtoB_holdout3_32x32_*.npz"))
    assert len(stats) == 1


def test_held_out_batches_stream_when_they_do_not_fit_in_memory():
    from compress.data import build_dataset
    from compress.searching.candidates import HeldOutBatches
    data = build_dataset("labelmap", str(FACADES), "train", palette="facades", load_size=(32, 32),
                         random_crop=False, max_items=5)
    kept = HeldOutBatches(data, range(5), 2, ("A", "label"))
    streamed = HeldOutBatches(data, range(5), 2, ("A", "label"), memory_limit_bytes=0)
    assert kept.cached is not None and streamed.cached is None
    assert len(kept) == len(streamed) == 3
    for _ in range(2):  # re-iterable, the same batches every pass
        for a, b in zip(kept, streamed):
            assert torch.equal(a["A"], b["A"]) and torch.equal(a["label"], b["label"])
    assert [len(b["A"]) for b in streamed] == [2, 2, 1]

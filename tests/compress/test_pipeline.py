"""python -m compress.pipeline: an end-to-end Fast-flow run on facades, resumption, the shipped configs."""
import glob
import json
import os
import time

import pytest
import torch

from compress.models.checkpoints import load_generator
from compress.common.config import load_config
from compress.pipeline import (Layout, load_pipeline, main, stage_config_class, stage_settings,
                               write_stage_toml)
from compress.searching.results import read_log, read_rows
from tests.conftest import DATASETS, REPO

FACADES = DATASETS / "facades" / "256"
SMOKE_PIPELINE = str(REPO / "configs" / "smoke_pipeline.toml")


@pytest.mark.slow  # ~8 s on an idle 2-core CPU, up to ~15 s under load
def test_fast_flow_end_to_end_then_a_rerun_skips_every_stage(tmp_path, capsys):
    from compress.train import main as train_main
    start = time.perf_counter()
    teacher_dir = tmp_path / "teacher"  # the smoke teacher: 4 steps of pix2pix, ngf 4, 32x32
    assert train_main([str(REPO / "configs" / "smoke_pix2pix.toml"), f"--dataroot={FACADES}",
                       f"--output_dir={teacher_dir}", "--tensorboard=false"]) == 0
    out = tmp_path / "pipeline"
    argv = [SMOKE_PIPELINE, f"--output_dir={out}", f"--teacher={teacher_dir / 'G_final.safetensors'}",
            f"--dataroot={FACADES}"]
    assert main(argv) == 0
    elapsed = time.perf_counter() - start

    summary = json.loads((out / "summary.json").read_text())
    stages = ("supernet", "search", "finetune", "extract")
    assert [summary["stages"][s]["status"] for s in stages] == ["ran"] * 4
    budget = 1.6e6  # configs/smoke_pipeline.toml
    rows = read_rows(str(out / "search" / "search_results.json"))
    logged = read_log(str(out / "search" / "search_log.jsonl"))
    assert len(logged) >= 6 and all(r["macs"] <= budget for r in rows + logged)
    best = rows[0]
    assert summary["config"] == best["config"] and summary["macs"] == best["macs"] <= budget
    assert summary["search"] == {"metric": "fidelity", "value": best["value"], "latency_ms": None,
                                 "evaluated": len(rows), "strategy": "evolution",
                                 "results": str(out / "search" / "search_results.json")}
    assert 5 < summary["search"]["value"] < 100 and summary["validation"]["psnr"] > 5
    assert summary["teacher_macs"] > summary["macs"] and summary["macs_reduction"] > 2
    # the supernet never trained on the 4 held-out items the search scored on
    _, supernet_meta = load_generator(str(out / "supernet" / "supernet.safetensors"))
    assert supernet_meta["holdout"] == {"items": 4, "seed": 0}
    search_summary = json.loads((out / "search" / "search_summary.json").read_text())
    assert search_summary["holdout"] == {"items": 4, "seed": 0}

    # the extracted generator computes what the fine-tuned supernet computes under that config
    compressed, meta = load_generator(str(out / "compressed.safetensors"))
    finetuned, _ = load_generator(str(out / "finetune" / "finetuned.safetensors"))
    assert meta["arch"] == "sub_mobile_resnet_9blocks" and meta["config"] == best["config"]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (compressed(x) - finetuned(x, best["config"])).abs().max() <= 1e-5
    printed = capsys.readouterr().out
    assert "compressed generator:" in printed and f"config {best['config']}" in printed

    files = {p: os.path.getmtime(p) for p in glob.glob(str(out / "**" / "*"), recursive=True)
             if os.path.isfile(p) and not p.endswith("summary.json")}
    assert main(argv) == 0
    again = json.loads((out / "summary.json").read_text())
    assert {s["status"] for s in again["stages"].values()} == {"skipped"}
    assert again["config"] == summary["config"]
    assert {p: os.path.getmtime(p) for p in files} == files  # nothing rewritten
    print(f"end-to-end pipeline: {elapsed:.1f} s")  # reported, not asserted: CI machines are shared


def test_redo_reruns_a_stage_and_the_later_ones(tmp_path, monkeypatch, capsys):
    import compress.pipeline as pipeline
    ran = []
    monkeypatch.setattr(pipeline, "run_stage", lambda stage, cfg, force: ran.append((stage, force)))
    monkeypatch.setattr(pipeline, "summarize", lambda *args: {"stub": True})
    monkeypatch.setattr(pipeline, "format_summary", lambda summary: "")
    out = tmp_path / "p"
    layout = Layout(str(out))
    for stage in ("supernet", "search", "finetune", "extract"):  # every stage done earlier
        os.makedirs(os.path.dirname(layout.output(stage)), exist_ok=True)
        text = json.dumps({"best": {"config": "4_4_4_4_4_4_4_4"}}) if stage == "search" else "x"
        open(layout.output(stage), "w").write(text)
    teacher = tmp_path / "teacher.safetensors"
    teacher.write_text("x")
    argv = [SMOKE_PIPELINE, f"--output_dir={out}", f"--teacher={teacher}", f"--dataroot={FACADES}"]
    assert main(argv) == 0 and ran == []
    assert main(argv + ["--redo=finetune", "--configs-only"]) == 0 and ran == []
    assert (out / "configs" / "extract.toml").is_file()
    assert main(argv + ["--redo=finetune"]) == 0
    assert ran == [("finetune", True), ("extract", True)]
    assert "config = \"4_4_4_4_4_4_4_4\"" in (out / "configs" / "finetune.toml").read_text()
    capsys.readouterr()
    assert main(argv + ["--max_items=11"]) == 0 and len(ran) == 2  # skipped, with a note
    assert "[finetune] settings changed since it ran (max_items: 12 -> 11); --redo=finetune" \
        in capsys.readouterr().out


def test_pipeline_errors_name_the_file_and_the_fix(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[pipeline]\nteacher = "t.safetensors"\n[supernet]\noutput_dir = "x"\n')
    teacher = tmp_path / "t.safetensors"
    teacher.write_text("x")
    assert main([str(bad), f"--teacher={teacher}", f"--output_dir={tmp_path / 'o'}",
                 f"--dataroot={FACADES}"]) == 2
    assert "[supernet] sets output_dir, which the pipeline wires itself" in capsys.readouterr().err
    bad.write_text('[pipeline]\nteacher = "t"\n[serch]\nmetric = "fid"\n')
    assert main([str(bad)]) == 2
    assert "unknown table(s) [serch]" in capsys.readouterr().err
    bad.write_text('[pipeline]\nteacher = "t"\nflow = "quick"\n')
    assert main([str(bad)]) == 2
    assert "flow = 'quick': choose one of fast, original" in capsys.readouterr().err


SHIPPED = sorted(os.path.basename(p) for p in glob.glob(str(REPO / "configs" / "*_compress.toml")))


@pytest.mark.parametrize("name", SHIPPED + ["smoke_pipeline.toml"])
def test_shipped_pipeline_configs_load_into_every_stage(name, tmp_path):
    """Each stage table of each shipped pipeline config is a valid config of that stage."""
    path = str(REPO / "configs" / name)
    pipe, tables = load_pipeline(path, [f"--output_dir={tmp_path}"])
    layout = Layout(str(tmp_path))
    os.makedirs(os.path.dirname(layout.output("search")))
    with open(layout.output("search"), "w") as handle:  # finetune / extract read the chosen config
        json.dump({"best": {"config": "16_16_16_16_16_16_16_16"}}, handle)
    stages = pipe.stages()
    assert stages[-1] == "extract" and "search" in stages
    for stage in stages:
        values = stage_settings(stage, pipe, tables[stage], layout, stages, path)
        write_stage_toml(layout.config_file(stage), stage, values)
        cfg = load_config(stage_config_class(stage), layout.config_file(stage))
        assert cfg.output_dir == layout.stage_dir(stage) if stage != "extract" else cfg.output.endswith(
            "compressed.safetensors")
        if stage == "search":
            assert (cfg.budget_macs or cfg.budget_latency_ms) and cfg.metric


def test_stage_keys_are_overridden_with_dotted_flags(tmp_path):
    """--STAGE.key=value wins over the stage table and is typed; typos fail before anything runs."""
    path = str(REPO / "configs" / "facades_compress.toml")
    pipe, tables = load_pipeline(path, [f"--output_dir={tmp_path}", "--supernet.nepochs=3",
                                        "--extract.eval_metric=none", "--search.population=8",
                                        "--device=cuda"])
    assert pipe.device == "cuda" and pipe.output_dir == str(tmp_path)
    assert tables["supernet"]["nepochs"] == 3 and tables["supernet"]["nepochs_decay"] == 50
    assert tables["extract"]["eval_metric"] == "none" and tables["search"]["population"] == 8
    with pytest.raises(ValueError, match=r"unknown stage 'serch'.*supernet"):
        load_pipeline(path, ["--serch.population=8"])
    with pytest.raises(ValueError, match=r"--supernet.nepoch=3: .*unknown key 'nepoch'.*nepochs"):
        load_pipeline(path, ["--supernet.nepoch=3"])
    with pytest.raises(ValueError, match=r"--supernet.nepochs=many"):
        load_pipeline(path, ["--supernet.nepochs=many"])

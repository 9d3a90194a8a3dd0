"""python -m compress.evaluate: the model-card scores of generators on real facades validation items."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from compress.models.checkpoints import save_generator
from compress.evaluate import EvaluateConfig, evaluate, main, markdown_table
from compress.models import build_generator
from compress.common.palettes import load_palette
from compress.metrics.segmenter import UNetSegmenter, save_segmenter, segmenter_metadata
from tests.conftest import DATASETS

FACADES = str(DATASETS / "facades" / "256")


def _generator(path, seed, ngf=4, resolution=32):
    torch.manual_seed(seed)
    model = build_generator("resnet_9blocks", input_nc=3, output_nc=3, ngf=ngf, n_blocks=2)
    save_generator(model, str(path), resolution=(resolution, resolution), palette="facades",
                   input_kind="label")
    return str(path)


@pytest.fixture()
def files(tmp_path):
    torch.manual_seed(0)
    palette = load_palette("facades")
    segmenter = UNetSegmenter(palette.num_classes, width=4, depth=2)
    seg = str(tmp_path / "seg.safetensors")
    save_segmenter(segmenter, seg, segmenter_metadata(segmenter, "facades", (32, 32), palette.ignore_id))
    return {"a": _generator(tmp_path / "a.safetensors", 1), "b": _generator(tmp_path / "b.safetensors", 2),
            "seg": seg, "tmp": tmp_path}


def test_scores_every_generator_and_the_real_ceiling(files, capsys):
    out, grid = files["tmp"] / "eval.json", files["tmp"] / "grid.png"
    argv = [files["a"], files["b"], "--names=teacher,student", f"--dataroot={FACADES}", "--max_items=5",
            f"--segmenter={files['seg']}", f"--output={out}", f"--grid={grid}", "--grid_rows=3",
            "--kid_subsets=5", "--cpu_threads=1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| teacher |" in printed and "| student |" in printed and "segmenter ceiling" in printed
    results = json.loads(out.read_text())
    teacher, student = results["generators"]["teacher"], results["generators"]["student"]
    assert teacher["images"] == student["images"] == 5 and teacher["resolution"] == [32, 32]
    assert teacher["psnr_vs_reference"] == float("inf")  # the reference is the first generator
    assert np.isfinite(student["psnr_vs_reference"]) and student["psnr_vs_reference"] > 0
    for row in (teacher, student):
        assert row["fid"] > 0 and 0 <= row["miou"] <= 100 and row["macs"] > row["true_macs"] > 0
    assert teacher["fid"] != student["fid"]  # different weights, different images
    assert set(results["real"]) == {"32x32"} and 0 <= results["real"]["32x32"]["miou"] <= 100
    # paired bootstrap intervals of the student against the first generator (the baseline)
    assert results["bootstrap"]["baseline"] == "teacher" and results["bootstrap"]["items"] == 5
    low, high = student["miou_diff_interval"]
    assert low <= student["miou_diff"] <= high
    assert student["miou_diff"] == pytest.approx(student["miou"] - teacher["miou"])
    low, high = student["kid_ratio_interval"]
    assert low <= student["kid_ratio"] <= high and "kid_ratio" not in teacher
    assert "kid_std" not in student  # it was ~1e-16 for small splits: replaced by the interval
    assert "90% paired bootstrap intervals" in printed and "| KID / teacher |" in printed
    # grid: 3 rows x (input, teacher, student, real) cells of 64 px with 4 px gaps
    assert Image.open(grid).size == (4 * 64 + 3 * 4, 3 * 64 + 2 * 4)
    # nothing is overwritten without --force
    assert main(argv) == 2 and "exists; pass --force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0


def test_same_weights_score_the_same_and_psnr_vs_real_is_exact(files):
    cfg = EvaluateConfig(generators=f"{files['a']},{files['a']}", names="x,y", dataroot=FACADES, max_items=4,
                         metrics="psnr,fid", device="cpu")
    results = evaluate(cfg, log=lambda _: None)
    x, y = results["generators"]["x"], results["generators"]["y"]
    assert x["fid"] == pytest.approx(y["fid"], abs=1e-6) and y["psnr_vs_reference"] == float("inf")
    assert "miou" not in x and "kid" not in x
    assert "| x |" in markdown_table(results)


def test_holdout_split_scores_exactly_the_items_the_stages_held_out(files):
    """The training stages never train on these items and the search scores them: evaluate's
    held-out split must be the very same items."""
    from compress.distillation.stage_config import StageConfig
    from compress.distillation.stages import build_datasets
    from compress.searching.config import SearchConfig
    from compress.searching.run import holdout_stems
    cfg = EvaluateConfig(generators=files["a"], dataroot=FACADES, split="train", holdout_items=6,
                         holdout_seed=0, metrics="psnr", device="cpu", bootstrap=0)
    results = evaluate(cfg, log=lambda _: None)
    assert results["generators"]["a"]["images"] == 6 and "bootstrap" not in results
    stage = StageConfig(dataroot=FACADES, dataset_mode="labelmap", palette="facades", holdout_items=6,
                        crop_size=32, teacher="unused", eval_metric="none")
    trained, _, stage_held = build_datasets(stage)
    search = SearchConfig(supernet="unused", dataroot=FACADES, dataset_mode="labelmap", palette="facades")
    _, search_held = holdout_stems(search, (32, 32), 6, 0)
    assert sorted(results["items"]) == sorted(stage_held) == sorted(search_held)
    assert not set(stage_held) & set(trained.stems)


def test_bad_input_gets_a_clear_error(files, capsys):
    base = [f"--dataroot={FACADES}", "--max_items=3"]
    assert main([files["a"]] + base) == 2
    assert "miou: pass --segmenter=PATH" in capsys.readouterr().err
    assert main([files["a"], "--metrics=fid,lpips"] + base) == 2
    assert "unknown lpips" in capsys.readouterr().err
    assert main([str(files["tmp"] / "missing.safetensors"), "--metrics=psnr"] + base) == 2
    assert "missing.safetensors: generator checkpoint not found" in capsys.readouterr().err
    assert main([files["a"], files["b"], "--names=one", "--metrics=psnr"] + base) == 2
    assert "--names must give 2 distinct names" in capsys.readouterr().err
    assert main([files["a"], "--metrics=psnr", "--confidence=95"] + base) == 2
    assert "confidence must be between 0 and 1" in capsys.readouterr().err
    torch.manual_seed(0)
    onehot = build_generator("resnet_9blocks", input_nc=12, output_nc=3, ngf=4, n_blocks=2)
    path = str(files["tmp"] / "onehot.safetensors")
    save_generator(onehot, path, resolution=(32, 32), palette="facades")
    assert main([path, "--metrics=psnr"] + base) == 2
    assert "takes 12 input channels but the labelmap data gives 3" in capsys.readouterr().err

"""python -m compress.train_segmenter: in-process smoke run, resume after interruption, --force."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file

import compress.train_segmenter as train_segmenter
from compress.metrics.segmenter import load_segmenter
from tests.conftest import DATASETS

FACADES = str(DATASETS / "facades" / "256")


def _args(output, steps, *extra):
    # 4 training images, batch 2: 2 steps per epoch; validation on 2 images
    return [f"--data-root={FACADES}", "--resolution=64", "--width=8", "--batch-size=2",
            "--max-train-items=4", "--max-val-items=2", "--checkpoint-every=2", "--device=cpu",
            "--max-steps", str(steps), "--output", str(output)] + list(extra)


def test_smoke_run_writes_checkpoint_config_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_segmenter.main(_args(out, 4)) == 0
    assert sorted(os.listdir(out)) == ["best.safetensors", "config.toml", "metrics.json", "train_state.pt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(h["epoch"], h["step"]) for h in metrics["history"]] == [(0, 2), (1, 4)]
    assert metrics["best_val_miou"] == pytest.approx(max(h["val_miou"] for h in metrics["history"]), abs=1e-3)
    model, meta = load_segmenter(str(out / "best.safetensors"))
    assert meta["palette"] == "facades" and meta["num_classes"] == 13 and meta["resolution"] == [64, 64]
    assert meta["val_miou"] == pytest.approx(metrics["best_val_miou"], abs=1e-3)
    assert 'max_steps = 4' in (out / "config.toml").read_text()
    # rerunning a finished run does nothing and says so
    assert train_segmenter.main(_args(out, 4)) == 0
    assert "already trained to step 4" in capsys.readouterr().out


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight"
    assert train_segmenter.main(_args(straight, 4)) == 0

    real_lr = train_segmenter._lr_at

    def interrupt_at_step_3(cfg, step, total):
        if step == 3:
            raise KeyboardInterrupt
        return real_lr(cfg, step, total)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(train_segmenter, "_lr_at", interrupt_at_step_3)
    assert train_segmenter.main(_args(resumed, 4)) == 130  # mid-epoch 1 (2 steps per epoch)
    state = torch.load(resumed / "train_state.pt", weights_only=True)
    assert state["step"] == 3
    capsys.readouterr()
    monkeypatch.setattr(train_segmenter, "_lr_at", real_lr)
    assert train_segmenter.main(_args(resumed, 4)) == 0
    assert "at step 3/4" in capsys.readouterr().out
    final = torch.load(resumed / "train_state.pt", weights_only=True)
    reference = torch.load(straight / "train_state.pt", weights_only=True)
    assert final["step"] == reference["step"] == 4
    for name, tensor in reference["model"].items():
        assert torch.allclose(final["model"][name].float(), tensor.float(), atol=1e-6), name
    best_a = load_file(str(resumed / "best.safetensors"))
    best_b = load_file(str(straight / "best.safetensors"))
    assert all(torch.allclose(best_a[k], best_b[k], atol=1e-6) for k in best_b)


def test_changed_settings_refuse_to_resume_and_force_restarts(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_segmenter.main(_args(out, 2)) == 0
    assert train_segmenter.main(_args(out, 2, "--width=16")) == 2
    assert "other settings" in capsys.readouterr().err
    assert train_segmenter.main(_args(out, 2, "--width=16", "--force")) == 0
    assert load_segmenter(str(out / "best.safetensors"))[1]["width"] == 16


def test_help_and_bad_settings(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_segmenter.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "load_scale" in text
    assert train_segmenter.main(["--resolution=abc"]) == 2
    assert "bad size" in capsys.readouterr().err
    assert train_segmenter.main(["--data-root=/nonexistent", "--output=/tmp/unused-seg-run"]) == 2

"""python -m compress.train_segmenter: in-process smoke run, resume after interruption, --force,
the shared command conventions (positional config, run folder rules) and the old spellings."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file

import compress.train_segmenter as train_segmenter
from compress.common.config import read_toml
from compress.metrics.segmenter import load_segmenter
from tests.conftest import DATASETS, REPO

FACADES = str(DATASETS / "facades" / "256")
# 4 training images, batch 2: 2 steps per epoch; validation on 2 images
SMALL = {"resolution": "64", "width": 8, "batch_size": 2, "max_train_items": 4, "max_val_items": 2,
         "checkpoint_every": 2, "device": "cpu"}


def _args(output, steps, *extra):
    return ([f"--dataroot={FACADES}"] + [f"--{key}={value}" for key, value in SMALL.items()]
            + [f"--max_steps={steps}", f"--output_dir={output}"] + list(extra))


def _write_toml(path, **values):
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_smoke_run_writes_checkpoint_config_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_segmenter.main(_args(out, 4)) == 0
    assert sorted(os.listdir(out)) == [".lock", "best.safetensors", "config.toml", "metrics.json",
                                       "train_state.pt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(h["epoch"], h["step"]) for h in metrics["history"]] == [(0, 2), (1, 4)]
    assert metrics["best_val_miou"] == pytest.approx(max(h["val_miou"] for h in metrics["history"]), abs=1e-3)
    model, meta = load_segmenter(str(out / "best.safetensors"))
    assert meta["palette"] == "facades" and meta["num_classes"] == 13 and meta["resolution"] == [64, 64]
    assert meta["val_miou"] == pytest.approx(metrics["best_val_miou"], abs=1e-3)
    saved = read_toml(str(out / "config.toml"))
    assert saved["max_steps"] == 4 and saved["dataroot"] == FACADES and saved["output_dir"] == str(out)
    assert "data_root" not in saved and "epochs" not in saved
    # rerunning a finished run does nothing and says so
    assert train_segmenter.main(_args(out, 4)) == 0
    assert "already trained to step 4" in capsys.readouterr().out


def _interrupt_at_step_3(monkeypatch):
    real_lr = train_segmenter._lr_at

    def interrupt(cfg, step, total):
        if step == 3:
            raise KeyboardInterrupt
        return real_lr(cfg, step, total)
    monkeypatch.setattr(train_segmenter, "_lr_at", interrupt)
    return real_lr


def _assert_same_run(resumed, straight):
    """Bit-identical weights, optimiser step and best checkpoint."""
    final = torch.load(resumed / "train_state.pt", weights_only=True)
    reference = torch.load(straight / "train_state.pt", weights_only=True)
    assert final["step"] == reference["step"] == 4
    for name, tensor in reference["model"].items():
        assert torch.equal(final["model"][name], tensor), name
    best_a = load_file(str(resumed / "best.safetensors"))
    best_b = load_file(str(straight / "best.safetensors"))
    assert best_a.keys() == best_b.keys() and all(torch.equal(best_a[k], best_b[k]) for k in best_b)


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight"
    assert train_segmenter.main(_args(straight, 4)) == 0

    resumed = tmp_path / "resumed"
    real_lr = _interrupt_at_step_3(monkeypatch)
    assert train_segmenter.main(_args(resumed, 4)) == 130  # mid-epoch 1 (2 steps per epoch)
    assert torch.load(resumed / "train_state.pt", weights_only=True)["step"] == 3
    capsys.readouterr()
    monkeypatch.setattr(train_segmenter, "_lr_at", real_lr)
    assert train_segmenter.main(_args(resumed, 4)) == 0
    assert "at step 3/4" in capsys.readouterr().out
    _assert_same_run(resumed, straight)


def test_a_run_folder_saved_before_the_rename_resumes_exactly(tmp_path, monkeypatch, capsys):
    """A run interrupted by the previous version (config.toml and the state's config_json with
    data_root/mode/epochs/output) resumes with the new names and ends where a straight run does."""
    straight = tmp_path / "straight"
    assert train_segmenter.main(_args(straight, 4)) == 0
    resumed = tmp_path / "resumed"
    real_lr = _interrupt_at_step_3(monkeypatch)
    assert train_segmenter.main(_args(resumed, 4)) == 130
    monkeypatch.setattr(train_segmenter, "_lr_at", real_lr)
    old_names = {new: old for old, new in train_segmenter.LEGACY_KEYS.items()}
    config = resumed / "config.toml"
    lines = []
    for line in config.read_text().splitlines():  # what the previous version wrote
        key, sep, value = line.partition(" = ")
        lines.append(f"{old_names.get(key, key)}{sep}{value}")
    config.write_text("\n".join(lines) + "\n")
    assert "data_root = " in config.read_text() and "epochs = " in config.read_text()
    state = torch.load(resumed / "train_state.pt", weights_only=True)
    saved = json.loads(state["config_json"])
    state["config_json"] = json.dumps({old_names.get(k, k): v for k, v in saved.items()})
    torch.save(state, resumed / "train_state.pt")
    capsys.readouterr()
    assert train_segmenter.main(_args(resumed, 4)) == 0
    captured = capsys.readouterr()
    assert "at step 3/4" in captured.out and "data_root -> dataroot" in captured.err
    _assert_same_run(resumed, straight)
    assert "dataroot = " in config.read_text() and "data_root" not in config.read_text()


def test_changed_settings_refuse_to_resume_and_force_restarts(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_segmenter.main(_args(out, 2)) == 0
    assert train_segmenter.main(_args(out, 2, "--width=16")) == 2
    error = capsys.readouterr().err
    assert "other settings" in error and "width: 8 -> 16" in error and "--force" in error
    # settings that do not change what is learnt may change
    assert train_segmenter.main(_args(out, 4, "--checkpoint_every=1")) == 0
    assert train_segmenter.main(_args(out, 2, "--width=16", "--force")) == 0
    assert load_segmenter(str(out / "best.safetensors"))[1]["width"] == 16


def test_results_without_a_checkpoint_are_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.safetensors").write_bytes(b"from an earlier run")
    assert train_segmenter.main(_args(out, 2)) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err
    assert (out / "best.safetensors").read_bytes() == b"from an earlier run"


def test_config_file_is_positional(tmp_path, capsys):
    config = _write_toml(tmp_path / "seg.toml", dataroot=FACADES, output_dir=str(tmp_path / "run"), **SMALL)
    assert train_segmenter.main([config, "--max_steps=2"]) == 0
    assert (tmp_path / "run" / "best.safetensors").is_file()
    assert "deprecated" not in capsys.readouterr().err
    assert read_toml(str(tmp_path / "run" / "config.toml"))["width"] == 8


def test_config_flag_is_a_deprecated_alias(tmp_path, capsys):
    config = _write_toml(tmp_path / "seg.toml", dataroot=FACADES, output_dir=str(tmp_path / "run"), **SMALL)
    assert train_segmenter.main(["--config", config, "--max_steps=2"]) == 0
    error = capsys.readouterr().err
    notes = [line for line in error.splitlines() if line.startswith("note:")]  # tqdm writes to stderr too
    assert len(notes) == 1 and "--config FILE is deprecated" in notes[0]
    assert read_toml(str(tmp_path / "run" / "config.toml"))["width"] == 8
    assert train_segmenter.main([config, f"--config={config}"]) == 2
    assert "two config files" in capsys.readouterr().err


def test_old_setting_names_load_with_a_note(tmp_path, capsys):
    out = tmp_path / "run"
    config = _write_toml(tmp_path / "old.toml", data_root=FACADES, mode="labelmap", output=str(out), epochs=1,
                         **SMALL)
    assert train_segmenter.main([config]) == 0  # epochs = 1: 2 steps
    error = capsys.readouterr().err
    assert all(f"{old} -> {new}" in error for old, new in train_segmenter.LEGACY_KEYS.items())
    saved = read_toml(str(out / "config.toml"))
    assert saved["nepochs"] == 1 and saved["dataroot"] == FACADES and saved["dataset_mode"] == "labelmap"
    assert json.loads((out / "metrics.json").read_text())["history"][-1]["step"] == 2
    # on the command line too
    cfg = train_segmenter.load_segmenter_config(None, ["--data-root=x", "--epochs=3", "--output=o"])
    assert (cfg.dataroot, cfg.nepochs, cfg.output_dir) == ("x", 3, "o")
    assert "--data_root is deprecated; use --dataroot" in capsys.readouterr().err


def test_the_shipped_segmenter_provenance_config_still_loads(capsys):
    cfg = train_segmenter.load_segmenter_config(
        str(REPO / "assets" / "models" / "facades" / "provenance" / "segmenter_config.toml"))
    assert (cfg.dataroot, cfg.dataset_mode, cfg.nepochs, cfg.output_dir) == (
        ".gpu/data/facades/256", "labelmap", 100, "runs/segmenter/facades")
    assert "deprecated setting name(s)" in capsys.readouterr().err
    model, meta = load_segmenter(str(REPO / "assets" / "models" / "facades" / "segmenter.safetensors"))
    assert meta["width"] == cfg.width and meta["num_classes"] == 13


def test_project_configs_use_the_new_names():
    for name in ("segmenter_facades.toml", "segmenter_camvid.toml"):
        table = read_toml(str(REPO / "configs" / name))
        assert not set(table) & set(train_segmenter.LEGACY_KEYS), name
        train_segmenter.load_segmenter_config(str(REPO / "configs" / name))


def test_old_and_new_name_together_and_removed_flags_are_errors(tmp_path, capsys):
    config = _write_toml(tmp_path / "both.toml", data_root="a", dataroot="b")
    assert train_segmenter.main([config]) == 2
    assert "both data_root (old name) and dataroot" in capsys.readouterr().err
    for flag, new in (("--max-steps", "max_steps"), ("--output", "output_dir"), ("--epochs", "nepochs")):
        assert train_segmenter.main([config, flag, "3"]) == 2
        assert f"write --{new}=VALUE" in capsys.readouterr().err


def test_help_and_bad_settings(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_segmenter.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "load_scale" in text and "dataroot (str" in text
    assert "compress.train_segmenter configs/segmenter_facades.toml" in text and "--max_steps=300" in text
    assert "--config FILE" in text and "--force" in text
    assert train_segmenter.main(["--resolution=abc"]) == 2
    assert "bad size" in capsys.readouterr().err
    out = tmp_path / "run"
    assert train_segmenter.main(["--dataroot=/nonexistent", f"--output_dir={out}"]) == 2
    assert not out.exists()  # a wrong dataroot leaves no run folder behind

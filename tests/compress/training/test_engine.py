"""compress.training.engine: interrupted runs resume to exactly the weights of uninterrupted ones."""
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from compress.models.checkpoints import read_state_dict
from compress.common.config import load_config
from compress.train import TrainConfig, train
from compress.training.engine import STATE_FILE, linear_decay
from compress.training.state import load_training_state
from tests.compress.conftest import assert_same_training_state
from tests.conftest import DATASETS, REPO

SMOKE = str(REPO / "configs" / "smoke_pix2pix.toml")
FACADES = DATASETS / "facades" / "256"


def config(run_dir, *overrides):
    return load_config(TrainConfig, SMOKE, [f"--dataroot={FACADES}", f"--output_dir={run_dir}",
                                            "--tensorboard=false", *overrides])


def test_linear_decay_matches_upstream_rule():
    factor = linear_decay(2, 3)
    assert [factor(e) for e in range(5)] == [1.0, 1.0, 0.75, 0.5, 0.25]


@pytest.mark.parametrize("stop_at", [2, 3])  # an epoch boundary, and mid-epoch
def test_max_steps_stop_then_resume_is_bit_identical(tmp_path, stop_at):
    # dropout draws from the torch RNG, flips/crops from (seed, epoch, index): both must line up
    extra = ["--dropout_rate=0.5", "--save_every_steps=100"]
    assert train(config(tmp_path / "full", *extra)) == 0
    assert train(config(tmp_path / "split", *extra, f"--max_steps={stop_at}")) == 0
    partial = load_training_state(str(tmp_path / "split" / STATE_FILE))
    assert partial["step"] == stop_at and not partial["finished"]
    assert not (tmp_path / "split" / "G_final.safetensors").exists()
    assert train(config(tmp_path / "split", *extra)) == 0  # the same command again resumes
    state, _ = assert_same_training_state(tmp_path / "full", tmp_path / "split")
    assert state["step"] == 4 and state["finished"]
    full, full_meta = read_state_dict(str(tmp_path / "full" / "G_final.safetensors"))
    split, split_meta = read_state_dict(str(tmp_path / "split" / "G_final.safetensors"))
    assert full_meta == split_meta and all(torch.equal(full[k], split[k]) for k in full)


def write_unaligned(root, n=4, size=40):
    """A tiny CycleGAN dataset from real photos: facades (A) and shoes (B)."""
    shoes = sorted((DATASETS / "edges2shoes_mini" / "train").glob("*.jpg"))
    photos = sorted(FACADES.glob("train/*.jpg"))
    for split in ("train", "val"):
        for i in range(n):
            facade = Image.open(photos[i + (n if split == "val" else 0)]).convert("RGB").resize((size, size))
            pair = Image.open(shoes[i + (n if split == "val" else 0)]).convert("RGB")
            shoe = pair.crop((pair.width // 2, 0, pair.width, pair.height)).resize((size, size))
            for domain, image in (("A", facade), ("B", shoe)):
                folder = root / f"{split}{domain}"
                folder.mkdir(parents=True, exist_ok=True)
                image.save(folder / f"{i}.png")
    return root


def cycle_config(data, run_dir, *overrides):
    return config(run_dir, f"--dataroot={data}", "--model=cycle_gan", "--dataset_mode=unaligned",
                  "--palette=none", "--gan_mode=lsgan", "--pool_size=2", "--eval_metric=none",
                  "--save_every_steps=100", *overrides)


def test_sigterm_saves_and_rerun_resumes_identically(tmp_path):
    data = write_unaligned(tmp_path / "data")
    assert train(cycle_config(data, tmp_path / "full")) == 0

    def interrupt(step):
        if step == 3:  # arrives mid-step; the trainer finishes the step, saves and stops
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    code = train(cycle_config(data, tmp_path / "split"), step_callback=interrupt)
    assert code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    saved = load_training_state(str(tmp_path / "split" / STATE_FILE))
    assert saved["step"] == 3 and saved["ranks"][0]["recipe"]["pool_A"].shape[0] == 2  # pool was saved
    assert train(cycle_config(data, tmp_path / "split")) == 0
    assert_same_training_state(tmp_path / "full", tmp_path / "split")
    for name in ("G_final.safetensors", "G_B_final.safetensors"):
        assert (tmp_path / "split" / name).is_file()


def test_finished_run_is_not_trained_again(tmp_path, capsys):
    cfg = config(tmp_path / "run", "--eval_metric=none")
    assert train(cfg) == 0
    before = (tmp_path / "run" / STATE_FILE).stat().st_mtime_ns
    final = tmp_path / "run" / "G_final.safetensors"
    final.unlink()  # lost export: re-written from the checkpoint
    assert train(cfg) == 0
    captured = capsys.readouterr()
    assert "already finished" in captured.out + captured.err
    assert final.is_file() and (tmp_path / "run" / STATE_FILE).stat().st_mtime_ns == before


def test_validation_does_not_change_training(tmp_path):
    """Evaluation runs under preserved RNG: with or without it, the weights are the same."""
    assert train(config(tmp_path / "eval", "--dropout_rate=0.5")) == 0
    assert train(config(tmp_path / "noeval", "--dropout_rate=0.5", "--eval_metric=none")) == 0
    a = load_training_state(str(tmp_path / "eval" / STATE_FILE))["modules"]["G"]
    b = load_training_state(str(tmp_path / "noeval" / STATE_FILE))["modules"]["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not np.allclose(a["model.1.weight"].numpy(), 0)


def test_second_ctrl_c_aborts_but_a_following_sigterm_does_not(tmp_path):
    def send(*signals):
        def callback(step):
            if step == 2:
                for signum in signals:
                    os.kill(os.getpid(), signum)
        return callback

    # what SIGINT was before: the default handler, or SIG_IGN when the suite runs as a background
    # job of a non-interactive shell (`make test &`), which Python then leaves in place
    before = signal.getsignal(signal.SIGINT)
    run = tmp_path / "abort"
    with pytest.raises(KeyboardInterrupt):
        train(config(run, "--eval_metric=none", "--save_every_steps=100"),
              step_callback=send(signal.SIGINT, signal.SIGINT))
    assert not (run / STATE_FILE).exists()  # aborted before any checkpoint
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored

    # torchrun answers Ctrl-C by sending SIGTERM to its workers: they must still save
    run = tmp_path / "torchrun"
    code = train(config(run, "--eval_metric=none", "--save_every_steps=100"),
                 step_callback=send(signal.SIGINT, signal.SIGTERM))
    assert code == 128 + signal.SIGINT
    assert load_training_state(str(run / STATE_FILE))["step"] == 2

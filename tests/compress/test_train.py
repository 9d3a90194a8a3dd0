"""python -m compress.train: in-process smoke runs of pix2pix, CycleGAN and GauGAN, CLI errors."""
import json

import pytest
import torch

from compress.models.checkpoints import load_generator
from compress.common.config import load_config
from compress.train import TrainConfig, main
from tests.compress.training.test_engine import FACADES, SMOKE, write_unaligned
from tests.conftest import REPO


def smoke(run_dir, *extra):
    return [SMOKE, f"--dataroot={FACADES}", f"--output_dir={run_dir}", *extra]


def test_pix2pix_smoke_exports_a_loadable_teacher(tmp_path):
    run = tmp_path / "run"
    assert main(smoke(run)) == 0
    model, meta = load_generator(str(run / "G_final.safetensors"))
    assert meta["arch"] == "resnet_9blocks" and meta["build"]["ngf"] == 4
    assert (meta["palette"], meta["input_kind"], meta["resolution"]) == ("facades", "label", [32, 32])
    assert meta["epochs"] == 2 and meta["steps"] == 4 and meta["macs"] > 0
    out = model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 3, 32, 32) and out.abs().max() <= 1
    _, best = load_generator(str(run / "G_best.safetensors"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["best"]["metric"] == "psnr" and best["best_psnr"] == metrics["best"]["value"] > 5
    saved = load_config(TrainConfig, str(run / "config.toml"))  # resolved config beside the outputs
    assert saved == load_config(TrainConfig, SMOKE, smoke(run)[1:])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_cycle_gan_smoke_with_fid_validation(tmp_path):
    data = write_unaligned(tmp_path / "data")
    run = tmp_path / "run"
    assert main(smoke(run, f"--dataroot={data}", "--model=cycle_gan", "--dataset_mode=unaligned",
                      "--palette=none", "--gan_mode=lsgan", "--eval_metric=fid", "--eval_every_epochs=2",
                      "--tensorboard=false")) == 0
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == 1 and history[0]["fid"] > 0 and "kid" in history[0] and "psnr" not in history[0]
    assert list((run / "real_stats").glob("*.npz"))  # real statistics cached in the run folder
    g_a, meta_a = load_generator(str(run / "G_final.safetensors"))
    g_b, meta_b = load_generator(str(run / "G_B_final.safetensors"))
    assert meta_a["input_kind"] == meta_b["input_kind"] == "image" and meta_a["palette"] is None
    assert not torch.equal(g_a.state_dict()["model.1.weight"], g_b.state_dict()["model.1.weight"])


def test_gaugan_smoke_trains_spade_on_one_hot_labels(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(smoke(run, "--model=gaugan", "--netG=spade", "--input_encoding=onehot", "--n_layers_D=4",
                      "--norm_D=spectralinstance", "--init_type=xavier", "--lr=1e-4", "--lr_D=4e-4",
                      "--beta1=0", "--beta2=0.9", "--tensorboard=false")) == 0
    assert "VGG perceptual loss off" in capsys.readouterr().out
    model, meta = load_generator(str(run / "G_final.safetensors"))
    assert meta["arch"] == "spade" and meta["build"]["semantic_nc"] == 13  # facades: 13 class ids
    assert meta["input_kind"] == "label" and meta["resolution"] == [32, 32]
    assert model(torch.zeros(1, 13, 32, 32)).shape == (1, 3, 32, 32)


def test_gaugan_recipe_adds_the_perceptual_term():
    from compress.models import build_generator
    from compress.models.discriminators import MultiscaleDiscriminator
    from compress.training.distributed import setup
    from compress.training.gaugan import GauGANRecipe

    class L1(torch.nn.Module):  # stands in for VGGPerceptualLoss (tested in test_losses)
        def forward(self, fake, real):
            return (fake - real).abs().mean()

    generator = build_generator("spade", semantic_nc=5, ngf=2, crop_size=32)
    recipe = GauGANRecipe(generator, MultiscaleDiscriminator(8, 4, 2, 2), setup("cpu"), vgg=L1(),
                          lambda_vgg=2.0)
    seg = torch.nn.functional.one_hot(torch.randint(0, 5, (2, 32, 32)), 5).permute(0, 3, 1, 2).float()
    losses = recipe.train_step({"A": seg, "B": torch.rand(2, 3, 32, 32) * 2 - 1})
    assert set(losses) == {"G_gan", "G_feat", "G_vgg", "D_fake", "D_real"} and losses["G_vgg"] > 0


@pytest.mark.parametrize("extra, message", [
    (["--ngff=3"], "unknown key 'ngff' (did you mean ngf?)"),
    (["--ngf=x"], "--ngf=x"),
    (["--model=stylegan"], "model = 'stylegan': choose one of pix2pix, cycle_gan, gaugan"),
    (["--dataset_mode=unaligned"], "needs paired data"),
    (["--dataroot=/nonexistent"], "/nonexistent: dataset folder not found"),
    (["--netG=unet_256"], "netG = 'unet_256': choose one of"),
    (["--eval_metric=miou"], "segmenter"),
    # checked when the config is read (before: a tensor size mismatch at step 1, ZeroDivisionError)
    (["--crop_size=30", "--load_size=36"], "30x30 (height x width) must be multiples of 4; use e.g. 28x28"),
    (["--aspect_ratio=0"], "aspect_ratio must be a positive width / height"),
    (["--lr=0"], "lr must be > 0"),
    (["--beta1=1.5"], "beta1 must be in [0, 1)"),
    (["--lambda_l1=-1"], "lambda_l1 must be >= 0"),
    (["--crop_size=64", "--load_size=32"], "crop_size = 64 is larger than load_size = 32"),
])
def test_bad_settings_exit_2_with_a_clear_message(tmp_path, capsys, extra, message):
    assert main(smoke(tmp_path / "run", *extra)) == 2
    assert message in capsys.readouterr().err


def test_resume_refuses_changed_settings_unless_forced(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(smoke(run, "--max_steps=1", "--eval_metric=none", "--tensorboard=false")) == 0
    assert main(smoke(run, "--ngf=8", "--eval_metric=none", "--tensorboard=false")) == 2
    assert "ngf: 4 -> 8" in capsys.readouterr().err
    assert main(smoke(run, "--ngf=8", "--eval_metric=none", "--tensorboard=false", "--force")) == 0
    _, meta = load_generator(str(run / "G_final.safetensors"))
    assert meta["build"]["ngf"] == 8 and meta["steps"] == 4


def test_outputs_without_a_checkpoint_are_not_overwritten(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "G_final.safetensors").write_bytes(b"user file")
    assert main(smoke(run, "--eval_metric=none")) == 2
    assert "--force" in capsys.readouterr().err
    assert (run / "G_final.safetensors").read_bytes() == b"user file"


def test_an_unwritable_run_folder_is_one_line_naming_the_path(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(smoke(blocker / "run")) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: could not write") and str(blocker / "run") in error
    assert "Traceback" not in error and error.count("\n") == 0


def test_a_second_run_on_the_same_folder_refuses_while_the_first_trains(tmp_path, capsys):
    import subprocess
    import sys
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom compress.training import run_dir\n"
         f"run_dir.lock({str(run)!r})\nprint('locked', flush=True)\ntime.sleep(60)\n"],
        cwd=str(REPO), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(smoke(run)) == 2
        error = capsys.readouterr().err
        assert f"{run} is in use by another running compress.train (pid {holder.pid})" in error
        assert not (run / "train_state.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(smoke(run, "--max_steps=1")) == 0  # the lock died with its process
    assert main(smoke(run, "--max_steps=2")) == 0  # and this process released its own

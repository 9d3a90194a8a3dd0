"""Helpers shared by the compress tests (their one home): the comparison of two runs' resumable
states (exact-resume tests), multi-process training, and the set-up of the compression-stage
tests: tiny random teachers/supernets saved in the project's format and the command-line
settings of a tiny facades run (4 images, 32x32). The one-thread fixture lives in tests/conftest.py."""
import os
from pathlib import Path
from typing import List

import torch

from compress.models import build_generator
from compress.models.checkpoints import save_generator
from tests.conftest import DATASETS, REPO

FACADES = DATASETS / "facades" / "256"
SMOKE_SUPERNET = str(REPO / "configs" / "smoke_supernet.toml")

# a tiny facades run without a TOML file (distill / finetune tests)
DATA_ARGS = [f"--dataroot={FACADES}", "--dataset_mode=labelmap", "--palette=facades", "--load_size=36",
             "--crop_size=32", "--max_items=4", "--batch_size=2", "--calibration_images=4"]
TRAIN_ARGS = DATA_ARGS + ["--ndf=8", "--nepochs=1", "--nepochs_decay=1", "--eval_metric=psnr",
                          "--eval_max_images=4", "--tensorboard=false", "--save_every_steps=100"]
# SPADE: 64x64 (the mobile SPADE's separable convs need a latent grid of at least 2x2)
SPADE_ARGS = [f"--dataroot={FACADES}", "--dataset_mode=labelmap", "--palette=facades",
              "--input_encoding=onehot", "--load_size=72", "--crop_size=64", "--max_items=4",
              "--batch_size=2", "--calibration_images=4",
              "--ndf=8", "--n_layers_D=2", "--norm_D=spectralinstance", "--nepochs=1", "--nepochs_decay=1",
              "--eval_metric=psnr", "--eval_max_images=2", "--tensorboard=false", "--lambda_recon=0",
              "--lambda_distill=10", "--init_type=xavier"]


def save_model(model, path: Path, size: int = 32) -> str:
    save_generator(model, str(path), overwrite=True, resolution=(size, size), palette="facades",
                   input_kind="label")
    return str(path)


def resnet_teacher(folder: Path, arch: str = "resnet_9blocks", ngf: int = 4) -> str:
    torch.manual_seed(3)
    return save_model(build_generator(arch, ngf=ngf), folder / f"{arch}_{ngf}.safetensors")


def spade_teacher(folder: Path, ngf: int = 4) -> str:
    torch.manual_seed(3)
    return save_model(build_generator("spade", semantic_nc=13, ngf=ngf, crop_size=64),
                      folder / f"spade_{ngf}.safetensors", 64)


def random_supernet(folder: Path, ngf: int = 4) -> str:
    torch.manual_seed(4)
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=ngf)
    return save_model(supernet, folder / "supernet.safetensors")


def args(*extra: str) -> List[str]:
    return list(TRAIN_ARGS) + list(extra)


def assert_same_training_state(dir_a, dir_b):
    """Two run folders hold bit-identical training states (weights, optimiser slots, history);
    returns both states for checks of their own (e.g. the recipe's rank state)."""
    from compress.training.engine import STATE_FILE
    from compress.training.state import load_training_state
    a = load_training_state(os.path.join(dir_a, STATE_FILE))
    b = load_training_state(os.path.join(dir_b, STATE_FILE))
    assert (a["step"], a["epoch"], a["finished"]) == (b["step"], b["epoch"], b["finished"])
    for name, state in a["modules"].items():
        for key, tensor in state.items():
            assert torch.equal(tensor, b["modules"][name][key]), f"{name}.{key} differs"
    for name, state in a["optimizers"].items():
        for index, slots in state["state"].items():
            for slot, value in slots.items():
                assert torch.equal(value, b["optimizers"][name]["state"][index][slot]), f"{name} {slot}"
    assert a["history"] == b["history"]
    return a, b


def train_as_rank(rank: int, world_size: int, port: int, build, cfg, out_dir) -> None:
    """One torchrun-like process of a multi-process test: join the gloo group, train with
    ``build(cfg, ctx)`` (a trainer factory), save the exit code and final weights to
    ``out_dir/rank<N>.pt`` for the test to compare."""
    from compress.training import distributed as D
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = D.setup(cfg.device)
    try:
        trainer = build(cfg, ctx)
        code = trainer.fit()
        weights = {f"{name}.{k}": v.detach().clone() for name, module in trainer.recipe.modules.items()
                   for k, v in module.state_dict().items()}
        torch.save({"code": code, "weights": weights}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        D.teardown(ctx)

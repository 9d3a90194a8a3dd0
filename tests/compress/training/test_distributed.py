"""Multi-process training (DistributedDataParallel, gloo on CPU): every rank ends with the same
weights, and 2 processes x batch 1 train like 1 process x batch 2."""
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from compress.models.checkpoints import read_state_dict
from compress.common.config import load_config
from compress.models import build_generator
from compress.models.discriminators import NLayerDiscriminator
from compress.train import TrainConfig, train
from compress.training.engine import STATE_FILE
from compress.training.state import load_training_state
from tests.compress.conftest import train_as_rank
from tests.compress.training.test_engine import FACADES, SMOKE
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def overrides(run_dir, batch_size):
    # no flips/crops would hide nothing here: augmentation is a function of (seed, epoch, index),
    # so it is identical however the examples are dealt to processes
    return [f"--dataroot={FACADES}", f"--output_dir={run_dir}", f"--batch_size={batch_size}",
            "--tensorboard=false", "--eval_metric=psnr", "--device=cpu"]


def _rank_main(rank, world_size, port, run_dir, out_dir):
    from compress.train import build_trainer
    cfg = load_config(TrainConfig, SMOKE, overrides(run_dir, 1))
    train_as_rank(rank, world_size, port, build_trainer, cfg, out_dir)


def test_two_gloo_processes_end_identical_and_match_a_double_batch(tmp_path):
    run_dir, out_dir = tmp_path / "ddp", tmp_path / "out"
    out_dir.mkdir()
    mp.spawn(_rank_main, args=(2, free_port(), str(run_dir), str(out_dir)), nprocs=2, join=True)
    ranks = [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["code"] == ranks[1]["code"] == 0
    assert ranks[0]["weights"].keys() == ranks[1]["weights"].keys()
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    # only rank 0 wrote the run folder: checkpoint with both ranks' RNG states, exports, metrics
    state = load_training_state(str(run_dir / STATE_FILE))
    assert state["world_size"] == 2 and len(state["ranks"]) == 2 and state["step"] == 4
    assert (run_dir / "G_final.safetensors").is_file() and (run_dir / "metrics.json").is_file()

    # gradients averaged over 2 ranks x batch 1 == one process with batch 2, up to float rounding.
    # Conv biases right before an InstanceNorm are excluded: their true gradient is zero, so Adam
    # turns rounding noise into +-lr steps; they cannot change any output, which is compared instead.
    torch.set_num_threads(1)
    assert train(load_config(TrainConfig, SMOKE, overrides(tmp_path / "single", 2))) == 0
    single = load_training_state(str(tmp_path / "single" / STATE_FILE))["modules"]
    ddp = {name: {k: ranks[0]["weights"][f"{name}.{k}"] for k in state} for name, state in single.items()}
    for name, state in single.items():
        for key, value in state.items():
            if key.endswith("weight"):
                torch.testing.assert_close(ddp[name][key], value, rtol=1e-4, atol=1e-6)
    torch.manual_seed(1)
    image, label = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    outputs = []
    for modules in (single, ddp):
        generator = build_generator("resnet_9blocks", ngf=4)
        generator.load_state_dict(modules["G"])
        discriminator = NLayerDiscriminator(6, ndf=8)
        discriminator.load_state_dict(modules["D"])
        with torch.no_grad():
            fake = generator(label)
            outputs.append((fake, discriminator(torch.cat([label, image], 1))))
    torch.testing.assert_close(outputs[0][0], outputs[1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outputs[0][1], outputs[1][1], rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # two fresh interpreters importing torch: 5 s idle, 10-20 s on a busy 2-core CPU
def test_torchrun_command_line(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
               str(free_port()), "-m", "compress.train", SMOKE, *overrides(tmp_path / "run", 1)]
    result = subprocess.run(command, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    tensors, meta = read_state_dict(str(tmp_path / "run" / "G_final.safetensors"))
    assert meta["steps"] == 4 and "model.1.weight" in tensors
    assert "x 2 processes" in result.stdout + result.stderr

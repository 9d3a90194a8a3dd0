"""python -m compress.supernet: smoke runs (ResNet, SPADE), outputs and metadata, resume after
max_steps and after SIGTERM (bit-identical to an uninterrupted run), settings errors."""
import json
import os
import signal

import pytest
import torch

from compress.common.config import load_config
from compress.models.discriminators import NLayerDiscriminator
from compress.supernet import SupernetConfig, load_supernet, main, search_space_of, train_supernet
from compress.training.engine import STATE_FILE
from compress.distillation.stages import load_aux
from compress.training.state import load_training_state
from tests.compress.conftest import assert_same_training_state, train_as_rank
from tests.compress.conftest import (FACADES, SMOKE_SUPERNET, SPADE_ARGS, args, resnet_teacher,
                                         spade_teacher)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return resnet_teacher(tmp_path_factory.mktemp("teacher"))


def smoke(teacher, run_dir, *extra):
    return [SMOKE_SUPERNET, f"--teacher={teacher}", f"--dataroot={FACADES}", f"--output_dir={run_dir}",
            *extra]


def test_smoke_run_writes_a_loadable_supernet_with_search_metadata(tmp_path, teacher):
    run = tmp_path / "run"
    assert main(smoke(teacher, run)) == 0
    supernet, meta = load_supernet(str(run / "supernet.safetensors"))
    assert meta["arch"] == "super_mobile_resnet_9blocks" and meta["build"]["ngf"] == 4
    assert meta["search_space"] == "custom" and meta["search_choices"] == [[4, 2]] * 8
    assert (meta["teacher"], meta["stage"], meta["steps"]) == (teacher, "supernet", 4)
    assert (meta["palette"], meta["input_kind"], meta["resolution"]) == ("facades", "label", [32, 32])
    space = search_space_of(meta)
    assert space.largest() == (4,) * 8 and space.size == 256
    assert supernet(torch.zeros(1, 3, 32, 32), config=space.smallest()).shape == (1, 3, 32, 32)
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["psnr"] == pytest.approx((history[0]["largest_psnr"] + history[0]["smallest_psnr"]) / 2)
    assert (run / "supernet_best.safetensors").is_file() and list((run / "tensorboard").glob("events.*"))
    load_aux(NLayerDiscriminator(6, 8, 3), str(run / "discriminator.safetensors"), "discriminator")
    saved = load_config(SupernetConfig, str(run / "config.toml"))
    assert saved == load_config(SupernetConfig, SMOKE_SUPERNET, smoke(teacher, run)[1:])
    with pytest.raises(ValueError, match="not a supernet"):
        load_supernet(teacher)


def config(teacher, run_dir, *extra):
    return load_config(SupernetConfig, SMOKE_SUPERNET,
                       smoke(teacher, run_dir, "--tensorboard=false", "--save_every_steps=100", *extra)[1:])


def assert_same_state(dir_a, dir_b):
    a, b = assert_same_training_state(dir_a, dir_b)
    assert (a["step"], a["finished"]) == (4, True)
    assert a["ranks"][0]["recipe"] == b["ranks"][0]["recipe"]  # the config sampler resumed too


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, teacher):
    run = tmp_path_factory.mktemp("full") / "run"
    assert train_supernet(config(teacher, run)) == 0
    return run


def test_max_steps_stop_then_rerun_continues_identically(tmp_path, teacher, uninterrupted):
    run = tmp_path / "split"
    assert train_supernet(config(teacher, run, "--max_steps=3")) == 0  # mid-epoch 2
    partial = load_training_state(str(run / STATE_FILE))
    assert partial["step"] == 3 and not partial["finished"] and not (run / "supernet.safetensors").exists()
    assert train_supernet(config(teacher, run)) == 0  # the same command again resumes
    assert_same_state(uninterrupted, run)
    a, b = (load_supernet(str(r / "supernet.safetensors"))[0].state_dict() for r in (uninterrupted, run))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_and_rerun_resumes_identically(tmp_path, teacher, uninterrupted):
    run = tmp_path / "split"

    def interrupt(step):
        if step == 1:  # the trainer finishes this step, saves and stops
            os.kill(os.getpid(), signal.SIGTERM)

    assert train_supernet(config(teacher, run), step_callback=interrupt) == 128 + signal.SIGTERM
    assert load_training_state(str(run / STATE_FILE))["step"] == 1
    assert train_supernet(config(teacher, run)) == 0
    assert_same_state(uninterrupted, run)


def test_spade_supernet_with_sandwich_rule_and_calibrated_evaluation(tmp_path):
    teacher = spade_teacher(tmp_path)
    run = tmp_path / "run"
    code = main([f"--teacher={teacher}", f"--output_dir={run}", *SPADE_ARGS, "--student_ngf=4",
                 "--search_space=custom", "--channel_choices=4,2", "--sampling=sandwich", "--max_items=2",
                 "--lambda_disc_feat=1",  # the SPADE path of the discriminator-feature term runs
                 "--nepochs_decay=0", "--lr=1e-4", "--lr_D=4e-4", "--beta1=0", "--beta2=0.9"])
    assert code == 0
    supernet, meta = load_supernet(str(run / "supernet.safetensors"))
    assert meta["arch"] == "super_mobile_spade" and meta["sampling"] == "sandwich"
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert {"largest_psnr", "smallest_psnr", "psnr"} <= set(history[0])
    state = load_training_state(str(run / STATE_FILE))["modules"]["G"]
    key = "head_0.norm_0.param_free_norm.running_mean"
    assert torch.equal(state[key], supernet.state_dict()[key])  # evaluation's calibration was undone


@pytest.mark.parametrize("extra, message", [
    (["--search_space=channels-48", "--channel_choices="], "wider than student_ngf = 4"),
    (["--channel_choices="], "needs channel_choices"),
    (["--sampling=greedy"], "sampling = 'greedy': choose one of uniform, sandwich"),
    (["--teacher="], "teacher is not set"),
    (["--input_encoding=onehot"], "takes 3-channel inputs but the dataset gives 13"),
    (["--init_student=MISSING.safetensors"], "MISSING.safetensors: no such checkpoint file"),
])
def test_bad_settings_exit_2_with_a_clear_message(tmp_path, capsys, teacher, extra, message):
    assert main(smoke(teacher, tmp_path / "run", "--tensorboard=false", *extra)) == 2
    assert message in capsys.readouterr().err


def _rank_main(rank, world_size, port, teacher, run_dir, out_dir):
    from compress.supernet import STAGE
    from compress.distillation.stages import build_stage_trainer
    cfg = config(teacher, run_dir, "--batch_size=1", "--sampling=sandwich", "--device=cpu")
    train_as_rank(rank, world_size, port, lambda c, ctx: build_stage_trainer(c, ctx, STAGE), cfg, out_dir)


@pytest.mark.slow  # two spawned processes: 8-12 s on the shared 2-core CPU
def test_two_gloo_processes_train_the_same_configs_and_end_identical(tmp_path, teacher):
    import torch.multiprocessing as mp

    from tests.compress.training.test_distributed import free_port
    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(_rank_main, args=(2, free_port(), teacher, str(tmp_path / "ddp"), str(out)), nprocs=2, join=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["code"] == ranks[1]["code"] == 0
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    state = load_training_state(str(tmp_path / "ddp" / STATE_FILE))
    assert state["world_size"] == 2 and state["step"] == 4
    assert state["ranks"][0]["recipe"] == state["ranks"][1]["recipe"]  # one config stream for all ranks
    assert (tmp_path / "ddp" / "supernet.safetensors").is_file()


def test_held_out_items_never_train(teacher):
    from compress.distillation.stages import build_datasets
    cfg = config(teacher, "unused", "--holdout_items=1", "--max_items=4")
    train, _, held = build_datasets(cfg)
    assert len(train) == 3 and len(held) == 1 and not set(held) & set(train.stems)
    assert build_datasets(config(teacher, "unused"))[2] == []


def test_facades_configs_load_and_match_each_other():
    from compress.finetune import FinetuneConfig
    from compress.models.search_space import get_search_space
    from tests.conftest import REPO
    supernet = load_config(SupernetConfig, str(REPO / "configs" / "facades_supernet.toml"))
    finetune = load_config(FinetuneConfig, str(REPO / "configs" / "facades_finetune.toml"))
    assert finetune.supernet == f"{supernet.output_dir}/supernet.safetensors"
    assert finetune.config in get_search_space("resnet", supernet.search_space)
    shared = ("teacher", "dataroot", "crop_size", "load_size", "holdout_items", "holdout_seed", "ndf",
              "gan_mode", "lambda_recon", "lambda_distill")
    assert all(getattr(supernet, key) == getattr(finetune, key) for key in shared)


def test_unpaired_supernet_distills_towards_the_teacher_with_fidelity_validation(tmp_path, teacher):
    from tests.compress.training.test_engine import write_unaligned
    data = write_unaligned(tmp_path / "data")
    run = tmp_path / "run"
    assert main(smoke(teacher, run, f"--dataroot={data}", "--dataset_mode=unaligned", "--palette=none",
                      "--gan_mode=lsgan", "--lambda_recon=10", "--lambda_distill=0.01",
                      "--eval_metric=fidelity", "--tensorboard=false")) == 0
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert {"largest_fidelity", "smallest_fidelity", "fidelity"} <= set(history[-1])
    assert history[-1]["fidelity"] > 3
    _, meta = load_supernet(str(run / "supernet.safetensors"))
    assert meta["dataset_mode"] == "unaligned" and meta["palette"] is None
    assert main(smoke(teacher, tmp_path / "bad", f"--dataroot={data}", "--dataset_mode=unaligned",
                      "--palette=none")) == 2  # psnr needs pairs


def test_a_missing_teacher_points_at_the_shipped_one(tmp_path, capsys):
    code = main(args(f"--teacher={tmp_path / 'nope.safetensors'}", f"--output_dir={tmp_path / 'run'}"))
    assert code == 2
    error = capsys.readouterr().err
    assert "nope.safetensors: teacher checkpoint not found" in error
    assert "--teacher=assets/models/facades/original.safetensors" in error  # every shipped pair
    assert "--teacher=assets/models/edges2shoes/original.safetensors" in error

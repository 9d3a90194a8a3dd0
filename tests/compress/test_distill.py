"""python -m compress.distill: prune the mobile teacher, distill, seed the supernet with it."""
import pytest
import torch

from compress.models.checkpoints import load_generator
from compress.common.config import load_config
from compress.distill import DistillConfig, main, plan_distill
from compress.models.pruning import prune_resnet
from compress.supernet import load_supernet
from compress.supernet import main as supernet_main
from compress.training.state import load_training_state
from tests.compress.conftest import args, resnet_teacher
from tests.conftest import REPO

SEGMENTER = REPO / "assets" / "models" / "facades" / "segmenter.safetensors"  # frozen: its features


@pytest.fixture(scope="module")
def mobile_teacher(tmp_path_factory):
    return resnet_teacher(tmp_path_factory.mktemp("teacher"), "mobile_resnet_9blocks", ngf=6)


def test_student_starts_as_the_pruned_teacher(mobile_teacher):
    cfg = load_config(DistillConfig, None, args(f"--teacher={mobile_teacher}", "--student_ngf=4"))
    teacher, _ = load_generator(mobile_teacher)
    notes = []
    plan = plan_distill(cfg, teacher, 3, (32, 32), notes.append)
    expected = prune_resnet(teacher, 4).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in plan.student.state_dict().items())
    assert plan.sampler(None) == [None] and "top-L1 channels, ngf 6 -> 4" in notes[0]


def test_distill_then_supernet_from_the_distilled_student(tmp_path, mobile_teacher):
    run = tmp_path / "distill"
    assert main(args(f"--teacher={mobile_teacher}", f"--output_dir={run}", "--student_ngf=4")) == 0
    student, meta = load_generator(str(run / "student.safetensors"))
    assert meta["arch"] == "mobile_resnet_9blocks" and meta["build"]["ngf"] == 4
    assert meta["pruned"] is True and meta["stage"] == "distill" and meta["teacher"] == mobile_teacher
    assert (run / "adaptors.safetensors").is_file() and (run / "student_best.safetensors").is_file()

    # original flow: the supernet (same ngf) starts from the distilled student
    supernet_run = tmp_path / "supernet"
    code = supernet_main(args(f"--teacher={mobile_teacher}", f"--output_dir={supernet_run}",
                              "--student_ngf=4", "--search_space=custom", "--channel_choices=4,2",
                              "--max_steps=1",
                              f"--init_student={run / 'student.safetensors'}",
                              f"--restore_A={run / 'adaptors.safetensors'}",
                              f"--restore_D={run / 'discriminator.safetensors'}"))
    assert code == 0
    state = load_training_state(str(supernet_run / "train_state.pt"))
    assert state["step"] == 1
    # after one step from the student's weights, the supernet is close to (not equal to) them
    trained = state["modules"]["G"]["model.1.weight"]
    start = student.state_dict()["model.1.weight"]
    assert not torch.equal(trained, start) and (trained - start).abs().max() < 1e-2

    wrong = supernet_main(args(f"--teacher={mobile_teacher}", f"--output_dir={tmp_path / 'wrong'}",
                               "--student_ngf=6", "--search_space=custom", "--channel_choices=4,2",
                               f"--init_student={run / 'student.safetensors'}"))
    assert wrong == 2
    with pytest.raises(ValueError, match="not a supernet"):
        load_supernet(str(run / "student.safetensors"))


def test_pruning_needs_a_mobile_teacher(tmp_path, capsys):
    dense = resnet_teacher(tmp_path, "resnet_9blocks", ngf=4)
    assert main(args(f"--teacher={dense}", f"--output_dir={tmp_path / 'a'}", "--student_ngf=2")) == 2
    assert "set prune = false" in capsys.readouterr().err
    run = tmp_path / "b"
    assert main(args(f"--teacher={dense}", f"--output_dir={run}", "--student_ngf=2", "--prune=false",
                     "--max_steps=1", "--eval_metric=none")) == 0
    assert (run / "train_state.pt").is_file()


def test_a_fixed_sub_network_student_grows_from_a_smaller_one(tmp_path, capsys):
    """student_config trains a standalone sub-network; init_student copies a narrower generator
    into its leading channel slices (the rest keeps its fresh init), and refuses a wider one."""
    from compress.distill import grow_into
    from compress.models import build_generator
    from tests.compress.conftest import save_model
    dense = resnet_teacher(tmp_path, "resnet_9blocks", ngf=4)
    torch.manual_seed(7)
    small = build_generator("sub_mobile_resnet_9blocks", config="2_2_2_4_2_2_2_2")
    small_path = save_model(small, tmp_path / "small.safetensors")
    cfg = load_config(DistillConfig, None, args(f"--teacher={dense}", "--prune=false",
                                                "--student_config=3_2_2_4_4_2_2_2",
                                                f"--init_student={small_path}"))
    teacher, _ = load_generator(dense)
    notes = []
    plan = plan_distill(cfg, teacher, 3, (32, 32), notes.append)
    grown = plan.student.state_dict()
    assert plan.student.config == "3_2_2_4_4_2_2_2" and plan.meta["config"] == "3_2_2_4_4_2_2_2"
    for key, value in small.state_dict().items():
        assert torch.equal(grown[key][tuple(slice(0, n) for n in value.shape)], value)
    assert grown["model.1.weight"].shape[0] == 3 and grown["model.1.weight"][2].abs().sum() > 0
    assert "of its values from" in notes[0]

    wide = save_model(build_generator("sub_mobile_resnet_9blocks", config="4_2_2_4_4_2_2_2"),
                      tmp_path / "wide.safetensors")
    with pytest.raises(ValueError, match="does not fit inside"):
        grow_into(build_generator("sub_mobile_resnet_9blocks", config="3_2_2_4_4_2_2_2"), wide)
    with pytest.raises(ValueError, match="set prune = false"):
        load_config(DistillConfig, None, args(f"--teacher={dense}", "--student_config=3_2_2_4_4_2_2_2"))

    run = tmp_path / "run"
    assert main(args(f"--teacher={dense}", f"--output_dir={run}", "--prune=false",
                     "--student_config=3_2_2_4_4_2_2_2", f"--init_student={small_path}",
                     "--lambda_teacher_l1=10", "--lambda_ssim=1", "--lambda_disc_feat=1", "--nepochs=1",
                     "--lambda_band=1",
                     "--lambda_perceptual=1", "--lambda_style=100", f"--style_network={SEGMENTER}",
                     "--nepochs_decay=0")) == 0
    exported, meta = load_generator(str(run / "student.safetensors"))
    assert meta["arch"] == "sub_mobile_resnet_9blocks" and meta["config"] == "3_2_2_4_4_2_2_2"
    assert meta["init_student"] == small_path

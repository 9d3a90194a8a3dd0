"""python -m compress.finetune: one sub-network trained inside the supernet or extracted."""
import pytest
import torch

from compress.models.checkpoints import load_generator
from compress.finetune import main
from compress.models import extract_subnet
from compress.models.resnet import ResnetWidths
from tests.compress.conftest import args, random_supernet, resnet_teacher

CONFIG = "4_2_2_4_2_4_2_4"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return resnet_teacher(folder), random_supernet(folder)


def slices(widths: ResnetWidths):
    """Leading-slice sizes of a few supernet tensors for ``widths``."""
    return {"model.1.weight": (widths.stem,), "model.4.weight": (widths.down1, widths.stem),
            "model.7.weight": (widths.trunk, widths.down1),
            "model.10.conv_block.1.conv.2.weight": (widths.inner[0], widths.trunk),
            "model.19.weight": (widths.trunk, widths.up1)}


def test_in_supernet_trains_only_the_chosen_slices(tmp_path, files):
    teacher, supernet = files
    run = tmp_path / "run"
    assert main(args(f"--teacher={teacher}", f"--supernet={supernet}", f"--config={CONFIG}",
                     f"--output_dir={run}")) == 0
    tuned, meta = load_generator(str(run / "finetuned.safetensors"))
    original, _ = load_generator(supernet)
    assert meta["arch"] == "super_mobile_resnet_9blocks" and meta["build"]["config"] == CONFIG
    assert (meta["config"], meta["finetune_mode"], meta["supernet"]) == (CONFIG, "in_supernet", supernet)
    after, before = tuned.state_dict(), original.state_dict()
    for key, sizes in slices(tuned.widths_for(CONFIG)).items():
        inside = tuple(slice(0, n) for n in sizes)
        assert not torch.equal(after[key][inside], before[key][inside]), key
        mask = torch.ones_like(before[key], dtype=torch.bool)
        mask[inside] = False
        assert torch.equal(after[key][mask], before[key][mask]), key  # Adam with zero gradients: no change


def test_standalone_trains_the_extracted_sub_network(tmp_path, files):
    teacher, supernet = files
    run = tmp_path / "run"
    common = [f"--teacher={teacher}", f"--supernet={supernet}", f"--config={CONFIG}", "--mode=standalone",
              f"--output_dir={run}"]
    assert main(args(*common, "--max_steps=1")) == 0
    assert main(args(*common)) == 0  # resumes to the end
    tuned, meta = load_generator(str(run / "finetuned.safetensors"))
    assert meta["arch"] == "sub_mobile_resnet_9blocks" and tuned.config == CONFIG and meta["steps"] == 4
    start = extract_subnet(load_generator(supernet)[0], CONFIG).state_dict()
    assert start.keys() == tuned.state_dict().keys()
    assert not torch.equal(start["model.1.weight"], tuned.state_dict()["model.1.weight"])


@pytest.mark.parametrize("extra, message", [
    (["--config=8_8_8_8_8_8_8_8"], "every channel number must be <= 4"),
    (["--config="], "config is not set"),
    (["--mode=both"], "mode = 'both': choose one of in_supernet, standalone"),
])
def test_bad_settings_exit_2(tmp_path, capsys, files, extra, message):
    teacher, supernet = files
    code = main(args(f"--teacher={teacher}", f"--supernet={supernet}", f"--config={CONFIG}",
                     f"--output_dir={tmp_path / 'run'}", *extra))
    assert code == 2 and message in capsys.readouterr().err


def test_a_non_supernet_is_refused(tmp_path, capsys, files):
    teacher, _ = files
    assert main(args(f"--teacher={teacher}", f"--supernet={teacher}", f"--config={CONFIG}",
                     f"--output_dir={tmp_path / 'run'}")) == 2
    assert "not a supernet" in capsys.readouterr().err

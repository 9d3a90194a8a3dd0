"""python -m compress.extract: the standalone compressed generator with full metadata."""
import pytest
import torch

from compress.models.checkpoints import load_generator, save_generator
from compress.common.config import load_config
from compress.extract import ExtractConfig, main
from compress.models import build_generator, extract_subnet
from compress.models.profile import count_macs
from compress.distillation.calibration import calibrate_batchnorm, calibration_batches
from compress.distillation.stages import build_datasets
from tests.compress.conftest import DATA_ARGS, FACADES, random_supernet, save_model

CONFIG = "4_2_2_4_2_4_2_4"


def test_extracted_generator_equals_the_supernet_config(tmp_path, capsys):
    supernet_path = random_supernet(tmp_path)
    out = tmp_path / "compressed.safetensors"
    assert main([f"--supernet={supernet_path}", f"--config={CONFIG}", f"--output={out}"]) == 0
    assert "0.00" in capsys.readouterr().out
    model, meta = load_generator(str(out))
    supernet, _ = load_generator(supernet_path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), supernet(x, config=CONFIG))
    assert meta["arch"] == "sub_mobile_resnet_9blocks" and meta["config"] == CONFIG
    assert (meta["supernet"], meta["palette"], meta["input_kind"], meta["resolution"]) == \
        (supernet_path, "facades", "label", [32, 32])
    counts = count_macs(model, (1, 3, 32, 32))
    assert all(meta[key] == counts[key] for key in ("macs", "true_macs", "params"))
    assert meta["validation"] == {} and (tmp_path / "compressed.config.toml").is_file()

    out.write_bytes(b"user file")  # never overwritten without --force
    assert main([f"--supernet={supernet_path}", f"--config={CONFIG}", f"--output={out}"]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"user file"
    assert main([f"--supernet={supernet_path}", f"--config={CONFIG}", f"--output={out}", "--force",
                 *DATA_ARGS, "--eval_metric=psnr", "--eval_max_images=4"]) == 0
    _, meta = load_generator(str(out))
    assert meta["validation"]["psnr"] > 3


def test_spade_sub_network_is_calibrated_before_export(tmp_path, capsys):
    torch.manual_seed(0)
    supernet = build_generator("super_mobile_spade", semantic_nc=13, ngf=4, crop_size=64)
    path = save_model(supernet, tmp_path / "spade_supernet.safetensors", 64)
    out = tmp_path / "spade.safetensors"
    data = [f"--dataroot={FACADES}", "--dataset_mode=labelmap", "--input_encoding=onehot", "--crop_size=64",
            "--load_size=64", "--max_items=4", "--batch_size=2", "--calibration_images=4"]
    config = "2_4_2_4_2_3_4_2"
    assert main([f"--supernet={path}", f"--config={config}", f"--output={out}"]) == 2
    assert "set dataroot" in capsys.readouterr().err
    assert main([f"--supernet={path}", f"--config={config}", f"--output={out}", *data]) == 0
    model, meta = load_generator(str(out))
    assert meta["arch"] == "sub_mobile_spade" and meta["bn_calibration_images"] == 4
    # the same calibration by hand on the same four training images gives the same statistics
    cfg = load_config(ExtractConfig, None, [f"--supernet={path}", f"--output={out}", "--palette=facades",
                                            *data])
    expected = extract_subnet(supernet, config)
    calibrate_batchnorm(expected, calibration_batches(build_datasets(cfg)[0], 4, 2))
    key = "up_1.norm_0.param_free_norm.running_var"
    torch.testing.assert_close(model.state_dict()[key], expected.state_dict()[key])
    assert not torch.equal(model.state_dict()[key], supernet.state_dict()[key])


def test_finetuned_checkpoint_names_its_config_and_supernets_need_one(tmp_path, capsys):
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=4)
    supernet.set_config(CONFIG)
    path = str(tmp_path / "finetuned.safetensors")
    save_generator(supernet, path, resolution=(32, 32), config=CONFIG, finetune_mode="in_supernet")
    out = tmp_path / "c.safetensors"
    assert main([f"--supernet={path}", f"--output={out}"]) == 0
    assert load_generator(str(out))[1]["config"] == CONFIG
    bare = random_supernet(tmp_path)
    assert main([f"--supernet={bare}", f"--output={tmp_path / 'd.safetensors'}"]) == 2
    assert "is a supernet: give config" in capsys.readouterr().err
    assert main([f"--supernet={out}", "--config=4_4_4_4_4_4_4_4",
                 f"--output={tmp_path / 'e.safetensors'}"]) == 2
    assert "not 4_4_4_4_4_4_4_4" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--output=x.pth"], "output must be a .safetensors path"),
    (["--supernet="], "supernet is not set"),
])
def test_bad_settings(tmp_path, capsys, extra, message):
    paths = [f"--supernet={tmp_path / 's.safetensors'}", f"--output={tmp_path / 'o.safetensors'}"]
    assert main(paths + extra) == 2
    assert message in capsys.readouterr().err

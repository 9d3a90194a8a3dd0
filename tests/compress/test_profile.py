"""MACs in the paper's convention must reproduce the published numbers exactly."""
import json

import pytest
import torch
from torch import nn

from compress.models.profile import count_macs, parse_size, profile_arch
from compress.profile import main


def test_teacher_macs_and_params():
    result = profile_arch("resnet_9blocks", (256, 256), ngf=64)
    assert round(result["macs"] / 1e9, 1) == 56.8
    assert round(result["true_macs"] / 1e9, 1) == 49.6
    assert result["params"] == 11_378_179


def test_retrained_edges2shoes_macs_are_exact():
    # docs/tutorials/gan_compression.md upstream: 4,993,843,200 MACs, 0.822M params
    result = profile_arch("sub_mobile_resnet_9blocks", (256, 256), config="32_32_48_32_48_48_16_16")
    assert result["macs"] == 4_993_843_200
    assert result["params"] == 822_051


@pytest.mark.parametrize("arch,config,gmacs", [
    ("sub_mobile_resnet_9blocks", "16_16_32_16_32_32_16_16", 2.55),   # h2z retrained
    ("sub_mobile_resnet_9blocks", "16_16_24_16_32_64_16_24", 2.64),   # h2z fast
    ("sub_mobile_resnet_9blocks", "24_24_24_32_20_16", 2.67),         # h2z paper
    ("legacy_sub_mobile_resnet_9blocks", "32_32_40_48_16_32", 4.81),  # e2s paper
    ("legacy_sub_mobile_resnet_9blocks", "48_32_40_40_24_32", 5.66),  # cityscapes paper
    ("sub_mobile_resnet_9blocks", "32_32_48_32_32_48_24_24", 5.59),   # cityscapes retrained
])
def test_released_configs_reproduce_published_macs(arch, config, gmacs):
    assert round(profile_arch(arch, (256, 256), config=config)["macs"] / 1e9, 2) == gmacs


def test_transposed_conv_counted_per_output_in_paper_convention():
    layer = nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1)
    counts = count_macs(layer, (1, 32, 64, 64))
    assert counts["macs"] == 128 * 128 * 16 * 32 * 9          # 75.5M: 4x the real work
    assert counts["true_macs"] == 64 * 64 * 32 * 16 * 9       # 18.9M


def test_instance_norm_counts_one_mac_per_element():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.InstanceNorm2d(8))
    assert count_macs(model, (1, 3, 16, 16))["macs"] == 16 * 16 * 8 * 3 + 16 * 16 * 8


def test_parse_size():
    assert parse_size("256") == (256, 256)
    assert parse_size("256x512") == (256, 512)
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_size("big")


def test_cli_json(capsys):
    assert main(["--arch", "sub_mobile_resnet_9blocks", "--config", "16_16_32_16_32_32_16_16",
                 "--size", "64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"] == 356_867
    assert result["height"] == result["width"] == 64


def test_cli_table_and_bad_config(capsys):
    assert main(["--arch", "resnet_9blocks", "--ngf", "8", "--size", "64"]) == 0
    assert "MACs (paper" in capsys.readouterr().out
    assert main(["--arch", "sub_mobile_resnet_9blocks", "--config", "1_2"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "expected 8" in error and "\n" not in error


def test_model_left_in_its_training_mode():
    model = nn.Conv2d(3, 3, 3)
    model.train()
    count_macs(model, (1, 3, 8, 8))
    assert model.training
    torch.manual_seed(0)

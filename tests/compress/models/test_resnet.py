"""ResNet family: official key layout, parameter counts, supernet slicing and extraction."""
import pytest
import torch

from compress.models import build_generator, extract_subnet
from compress.models.resnet import ResnetWidths


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch,kwargs,params", [
    ("resnet_9blocks", {"ngf": 64}, 11_378_179),
    ("sub_mobile_resnet_9blocks", {"config": "32_32_48_32_48_48_16_16"}, 822_051),
    ("sub_mobile_resnet_9blocks", {"config": "16_16_32_16_32_32_16_16"}, 356_867),
    ("sub_mobile_resnet_9blocks", {"config": "24_24_40_56_24_56_16_40"}, 702_835),     # fast e2s 0.703M
    ("sub_mobile_resnet_9blocks", {"config": "24_24_24_32_20_16"}, 341_627),         # paper h2z 0.342M
    ("legacy_sub_mobile_resnet_9blocks", {"config": "32_32_40_48_16_32"}, 699_875),  # paper e2s 0.700M
    ("legacy_sub_mobile_resnet_9blocks", {"config": "48_32_40_40_24_32"}, 707_347),  # paper city 0.707M
])
def test_parameter_counts_match_the_paper(arch, kwargs, params):
    assert n_params(build_generator(arch, **kwargs)) == params


def test_teacher_key_layout_is_official():
    keys = set(build_generator("resnet_9blocks", ngf=8).state_dict())
    assert {"model.1.weight", "model.4.bias", "model.7.weight", "model.10.conv_block.1.weight",
            "model.18.conv_block.6.bias", "model.19.weight", "model.22.weight",
            "model.26.weight", "model.26.bias"} <= keys
    assert not any("running" in k or "norm" in k for k in keys)  # InstanceNorm without params


def test_config_semantics_of_the_8_number_encoding():
    w = ResnetWidths.from_config((16, 24, 32, 8, 16, 40, 48, 56), n_blocks=9)
    assert (w.stem, w.down1, w.trunk) == (16, 48, 128)
    assert w.inner == (32,) * 3 + (64,) * 3 + (160,) * 3
    assert (w.up1, w.up2) == (96, 56)
    legacy = ResnetWidths.from_config((24, 24, 24, 32, 20, 16), n_blocks=9, legacy=True)
    assert legacy.inner == (128, 96, 96, 128, 96, 96, 128, 96, 96)  # c3 on blocks 1, 4, 7 only
    assert (legacy.up1, legacy.up2) == (40, 16)


def test_super_and_mobile_share_keys_and_shapes():
    sup = build_generator("super_mobile_resnet_9blocks", ngf=16)
    mob = build_generator("mobile_resnet_9blocks", ngf=16)
    assert {k: v.shape for k, v in sup.state_dict().items()} == \
        {k: v.shape for k, v in mob.state_dict().items()}


def test_supernet_at_full_width_equals_the_mobile_net():
    sup = build_generator("super_mobile_resnet_9blocks", ngf=8).eval()
    mob = build_generator("mobile_resnet_9blocks", ngf=8).eval()
    mob.load_state_dict(sup.state_dict())
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.allclose(sup(x), mob(x), atol=1e-6)


@pytest.mark.parametrize("config", ["16_16_32_16_32_32_16_16", "8_16_24_32_8_16_24_32", "32_32_32_32_32_32"])
def test_extracted_subnet_reproduces_the_supernet(config):
    sup = build_generator("super_mobile_resnet_9blocks", ngf=32).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    sub = extract_subnet(sup, config)
    assert type(sub).__name__ == "SubMobileResnetGenerator"
    with torch.no_grad():
        diff = (sub(x) - sup(x, config=config)).abs().max().item()
    assert diff <= 1e-5
    # the active config set on the supernet is used when forward gets none
    sup.set_config(config)
    with torch.no_grad():
        assert torch.equal(sup(x), sup(x, config=config))


def test_extraction_really_depends_on_weights():
    sup = build_generator("super_mobile_resnet_9blocks", ngf=16).eval()
    sub = extract_subnet(sup, "8_8_8_8_8_8_8_8")
    with torch.no_grad():
        sup.model[1].weight[0] += 1.0  # a leading channel the sub-network uses
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (sub(x) - sup(x, config="8_8_8_8_8_8_8_8")).abs().max() > 1e-3


def test_config_wider_than_the_supernet_is_rejected():
    sup = build_generator("super_mobile_resnet_9blocks", ngf=16)
    with pytest.raises(ValueError, match="wider than this supernet"):
        sup.set_config("32_16_16_16_16_16_16_16")
    with pytest.raises(ValueError, match="16_16"):
        sup.set_config("16_16")


@pytest.mark.parametrize("arch,kwargs", [
    ("resnet_9blocks", {"ngf": 16}), ("mobile_resnet_9blocks", {"ngf": 16}),
    ("super_mobile_resnet_9blocks", {"ngf": 16}),
    ("sub_mobile_resnet_9blocks", {"config": "8_8_16_8_16_16_8_8"}),
    ("legacy_sub_mobile_resnet_9blocks", {"config": "8_8_16_8_8_8"})])
def test_every_resnet_generator_runs_at_256(arch, kwargs):
    model = build_generator(arch, **kwargs).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert y.shape == (1, 3, 256, 256)
    assert y.abs().max() <= 1.0


def test_input_is_clamped_like_upstream():
    model = build_generator("sub_mobile_resnet_9blocks", config="8_8_8_8_8_8_8_8").eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), model(x.clamp(-1, 1)))
        assert torch.equal(model(x * 5).clamp(-1, 1), model((x * 5).clamp(-1, 1)))

"""SPADE family: official key layout and sizes, input-size handling, supernet slicing, extraction."""
import pytest
import torch

from compress.models.spade import (MobileSPADEGenerator, PaddedBatchNorm2d, SPADEGenerator,
                                   SpadeWidths, SubMobileSPADEGenerator)
from compress.models.super_spade import SuperMobileSPADEGenerator

try:
    from compress.models.extract import extract_subnet
except ImportError:  # pragma: no cover - fallback while extract.py is absent
    extract_subnet = None

CITYSCAPES = dict(semantic_nc=36, crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more")
SMALL = dict(semantic_nc=13, ngf=16)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def one_hot(n, classes, height, width, seed=0):
    labels = torch.randint(0, classes, (n, height, width), generator=torch.Generator().manual_seed(seed))
    return torch.zeros(n, classes, height, width).scatter_(1, labels[:, None], 1.0)


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def leading_slice_copy(supernet, subnet):
    """What compress.models.extract does: copy super[k][:a, :b, ...] into every sub key."""
    if extract_subnet is not None:
        return extract_subnet(supernet, subnet.config)
    source = supernet.state_dict()
    subnet.load_state_dict({k: source[k][tuple(slice(0, n) for n in v.shape)].clone()
                            for k, v in subnet.state_dict().items()})
    return subnet


# ---------------------------------------------------------------- sizes of the released models

def test_teacher_cityscapes_has_93_0m_params():
    model = SPADEGenerator(ngf=64, **CITYSCAPES)
    assert model.input_size == (256, 512)
    assert n_params(model) == 93_048_003
    assert round(n_params(model) / 1e6, 1) == 93.0


@pytest.mark.slow
def test_teacher_cityscapes_has_281g_macs():
    profile = pytest.importorskip("compress.models.profile")
    result = profile.count_macs(SPADEGenerator(ngf=64, **CITYSCAPES), (1, 36, 256, 512))
    assert result["macs"] == 281_356_632_064
    assert abs(result["macs"] - 281e9) <= 0.5e9
    assert result["params"] == 93_048_003


# README: Paper (ngf 48) 20.4M / 31.7G, Retrained (ngf 48) 21.0M / 31.2G, Fast (ngf 64) 20.2M / 31.3G.
RELEASED = [
    (48, "32_32_48_32_32_32_32_24", 20_425_019, 31_701_762_048),
    (48, "32_40_40_32_40_24_32_24", 21_002_811, 31_206_027_264),
    (64, "32_32_32_48_32_24_24_32", 20_174_275, 31_251_300_352),
]


@pytest.mark.parametrize("ngf,config,params,macs", RELEASED)
def test_released_subnet_params(ngf, config, params, macs):
    assert n_params(SubMobileSPADEGenerator(ngf=ngf, config=config, **CITYSCAPES)) == params


@pytest.mark.slow
@pytest.mark.parametrize("ngf,config,params,macs", RELEASED)
def test_released_subnet_macs(ngf, config, params, macs):
    profile = pytest.importorskip("compress.models.profile")
    model = SubMobileSPADEGenerator(ngf=ngf, config=config, **CITYSCAPES)
    assert profile.count_macs(model, (1, 36, 256, 512))["macs"] == macs


def test_official_key_layout():
    teacher = shapes(SPADEGenerator(semantic_nc=36, ngf=64))
    assert teacher["fc.weight"] == (1024, 36, 3, 3)
    assert teacher["head_0.norm_0.mlp_shared.0.weight"] == (128, 36, 3, 3)
    assert teacher["head_0.norm_0.mlp_gamma.weight"] == (1024, 128, 3, 3)
    assert teacher["up_0.conv_s.weight"] == (512, 1024, 1, 1)
    assert "up_0.conv_s.bias" not in teacher and "head_0.conv_s.weight" not in teacher
    assert teacher["up_3.norm_1.param_free_norm.running_var"] == (64,)
    assert teacher["conv_img.weight"] == (3, 64, 3, 3)

    mobile = shapes(MobileSPADEGenerator(semantic_nc=36, ngf=64))
    assert mobile["head_0.norm_1.mlp_beta.conv.0.weight"] == (128, 1, 3, 3)
    assert mobile["head_0.norm_1.mlp_beta.conv.2.weight"] == (1024, 128, 1, 1)

    # The released Fast sub-network: convs at sub width, batch-norm buffers at supernet width.
    sub = shapes(SubMobileSPADEGenerator(semantic_nc=36, ngf=64, config="32_32_32_48_32_24_24_32"))
    assert sub["fc.weight"] == (512, 36, 3, 3)
    assert sub["head_0.conv_0.weight"] == (512, 512, 3, 3)
    assert sub["G_middle_1.conv_0.weight"] == (768, 512, 3, 3)
    assert sub["G_middle_1.conv_1.weight"] == (512, 768, 3, 3)
    assert sub["up_0.conv_s.weight"] == (256, 512, 1, 1)
    assert sub["up_1.conv_1.weight"] == (96, 96, 3, 3)
    assert sub["up_3.norm_0.mlp_shared.0.weight"] == (64, 36, 3, 3)
    assert sub["up_3.norm_0.mlp_gamma.conv.2.weight"] == (48, 64, 1, 1)
    assert sub["conv_img.weight"] == (3, 32, 3, 3)
    assert sub["head_0.norm_0.param_free_norm.running_mean"] == (1024,)
    assert sub["up_0.norm_1.param_free_norm.running_var"] == (512,)
    assert sub["up_3.norm_s.param_free_norm.running_mean"] == (128,)


def test_spectral_norm_keys_and_removal():
    model = SPADEGenerator(spectral_norm=True, **SMALL)
    keys = set(model.state_dict())
    assert {"head_0.conv_0.weight_orig", "head_0.conv_0.weight_u", "head_0.conv_0.weight_v",
            "up_0.conv_s.weight_orig"} <= keys
    assert "fc.weight" in keys and "head_0.norm_0.mlp_gamma.weight" in keys  # not spectral
    segmap = one_hot(1, 13, 64, 64)
    model.eval()
    with torch.no_grad():
        before = model(segmap)
        model.remove_spectral_norm()
        after = model(segmap)
    assert shapes(model) == shapes(SPADEGenerator(**SMALL))
    assert torch.allclose(before, after, atol=1e-6)


# ---------------------------------------------------------------------------- running the family

def family(num_upsampling_layers="normal"):
    kw = dict(SMALL, num_upsampling_layers=num_upsampling_layers)
    yield SPADEGenerator(**kw)
    yield MobileSPADEGenerator(**kw)
    yield SuperMobileSPADEGenerator(**kw)
    yield SuperMobileSPADEGenerator(config="8_12_16_4_8_12_4_8", **kw)
    yield SubMobileSPADEGenerator(config="8_12_16_4_8_12_4_8", **kw)


@pytest.mark.parametrize("mode", ["normal", "more"])
def test_every_member_runs_at_256(mode):
    segmap = one_hot(1, 13, 256, 256)
    for model in family(mode):
        assert model.family == "spade"
        assert model.input_nc == model.semantic_nc == 13 and model.output_nc == 3
        with torch.no_grad():
            out = model.eval()(segmap)
        assert out.shape == (1, 3, 256, 256), type(model).__name__
        assert out.min() >= -1 and out.max() <= 1


def test_most_upsampling_adds_up_4():
    model = SPADEGenerator(semantic_nc=5, ngf=8, num_upsampling_layers="most")
    assert shapes(model)["up_4.conv_1.weight"] == (4, 4, 3, 3)
    assert shapes(model)["conv_img.weight"] == (3, 4, 3, 3)
    with torch.no_grad():
        assert model.eval()(one_hot(1, 5, 128, 128)).shape == (1, 3, 128, 128)
    with pytest.raises(ValueError, match="up_4"):
        SuperMobileSPADEGenerator(semantic_nc=5, ngf=8, num_upsampling_layers="most")


def test_latent_grid_follows_the_input():
    model = MobileSPADEGenerator(semantic_nc=5, ngf=8, crop_size=512, aspect_ratio=2.0,
                                 num_upsampling_layers="more")
    assert model.latent_size(256, 512) == (4, 8)  # upstream's grid at the configured crop
    with torch.no_grad():
        assert model.eval()(one_hot(1, 5, 128, 192)).shape == (1, 3, 128, 192)
    with pytest.raises(ValueError, match="multiple of 64"):
        model(one_hot(1, 5, 100, 128))
    with pytest.raises(ValueError, match="one-hot semantic map"):
        model(one_hot(1, 6, 128, 128))
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        SPADEGenerator(semantic_nc=5, num_upsampling_layers="many")


def test_output_nc_and_training_step():
    model = SuperMobileSPADEGenerator(semantic_nc=5, ngf=8, output_nc=1)
    out = model(one_hot(2, 5, 64, 64), config="4_8_4_8_4_8_4_4")  # train mode, padded BN
    assert out.shape == (2, 1, 64, 64)
    out.mean().backward()
    grad = model.up_3.conv_1.weight.grad  # [8, 8, 3, 3]; up_3 runs 4 -> 4 channels
    assert grad[:4, :4].abs().sum() > 0
    assert grad[4:].abs().sum() == 0 and grad[:, 4:].abs().sum() == 0  # unused weights get none


# ------------------------------------------------------------------------ supernet and extraction

def test_supernet_keys_equal_mobile_and_full_subnet():
    mobile = shapes(MobileSPADEGenerator(num_upsampling_layers="more", **SMALL))
    supernet = SuperMobileSPADEGenerator(num_upsampling_layers="more", **SMALL)
    assert shapes(supernet) == mobile
    assert list(supernet.state_dict()) == list(mobile)
    full = SubMobileSPADEGenerator(config="16_16_16_16_16_16_16_16", num_upsampling_layers="more", **SMALL)
    assert shapes(full) == mobile


@pytest.mark.parametrize("config", ["8_12_16_4_8_12_4_8", "4_4_4_4_4_4_4_4", "16_8_12_16_12_4_16_8"])
def test_subnet_tensors_are_leading_slices(config):
    supernet = shapes(SuperMobileSPADEGenerator(**SMALL))
    sub = shapes(SubMobileSPADEGenerator(config=config, **SMALL))
    assert list(sub) == list(supernet)
    for key, shape in sub.items():
        assert len(shape) == len(supernet[key]) and all(
            a <= b for a, b in zip(shape, supernet[key])), key
        if "param_free_norm" in key:
            assert shape == supernet[key], key  # statistics stay supernet-wide


def calibrated_supernet(mode):
    torch.manual_seed(0)
    supernet = SuperMobileSPADEGenerator(num_upsampling_layers=mode, **SMALL)
    for module in supernet.modules():  # non-trivial statistics so slicing mistakes would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return supernet.eval()


@pytest.mark.parametrize("mode,config", [
    ("normal", "16_16_16_16_16_16_16_16"),
    ("normal", "8_12_16_4_8_12_4_8"),
    ("more", "4_8_12_16_16_4_8_12"),
])
def test_extracted_subnet_reproduces_supernet(mode, config):
    supernet = calibrated_supernet(mode)
    subnet = leading_slice_copy(supernet, supernet.make_subnet(config)).eval()
    assert isinstance(subnet, SubMobileSPADEGenerator) and subnet.config == config
    segmap = one_hot(2, 13, 128, 128)
    with torch.no_grad():
        expected = supernet(segmap, config=config)
        supernet.set_config(config)
        assert torch.equal(supernet(segmap), expected)
        assert (subnet(segmap) - expected).abs().max() <= 1e-5
    # strict round trip, as for an official sub-network checkpoint
    fresh = SubMobileSPADEGenerator(config=config, num_upsampling_layers=mode, **SMALL)
    fresh.load_state_dict(subnet.state_dict(), strict=True)


def test_make_subnet_keeps_constructor_arguments():
    supernet = SuperMobileSPADEGenerator(semantic_nc=7, output_nc=1, ngf=8, crop_size=512,
                                         aspect_ratio=2.0, num_upsampling_layers="more",
                                         config="8_8_8_8_8_8_8_4")
    sub = supernet.make_subnet()
    assert (sub.semantic_nc, sub.output_nc, sub.ngf, sub.crop_size, sub.aspect_ratio,
            sub.num_upsampling_layers, sub.config) == (7, 1, 8, 512, 2.0, "more", "8_8_8_8_8_8_8_4")
    assert sub.input_size == supernet.input_size == (256, 512)


def test_config_decoding():
    widths = SpadeWidths.from_config([32, 32, 32, 48, 32, 24, 24, 32])
    assert widths.trunk == 512 and widths.final == 32
    assert [(b.in_nc, b.channel, b.hidden) for b in widths.blocks.values()] == [
        (512, 512, 64), (512, 512, 64), (512, 768, 96), (512, 256, 64), (256, 96, 48),
        (96, 48, 48), (48, 32, 64)]


@pytest.mark.parametrize("config", ["", "8_8_8", "8_8_8_8_8_8_8_8_8", "8_8_x_8_8_8_8_8",
                                    "8_8_8_8_0_8_8_8", "8_8_8_8_-8_8_8_8", 42])
def test_malformed_configs_raise(config):
    supernet = SuperMobileSPADEGenerator(semantic_nc=5, ngf=16)
    with pytest.raises(ValueError):
        SubMobileSPADEGenerator(semantic_nc=5, ngf=16, config=config)
    with pytest.raises(ValueError):
        supernet.set_config(config)
    with pytest.raises(ValueError):
        supernet(one_hot(1, 5, 64, 64), config=config)


def test_config_wider_than_supernet_raises():
    supernet = SuperMobileSPADEGenerator(semantic_nc=5, ngf=16)
    with pytest.raises(ValueError, match="wider than the supernet"):
        supernet.set_config("16_16_16_16_16_16_16_24")
    with pytest.raises(ValueError, match="wider than the supernet"):
        supernet.make_subnet("24_16_16_16_16_16_16_16")
    with pytest.raises(ValueError, match="wider than the supernet"):
        SubMobileSPADEGenerator(semantic_nc=5, ngf=16, config="16_16_16_16_16_16_16_24")
    assert supernet.config == "16_16_16_16_16_16_16_16"  # failed calls leave the config alone


def test_padded_batch_norm_equals_sliced_statistics():
    norm = PaddedBatchNorm2d(8, affine=False).eval()
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 5, 4, 4)
    mean, var = norm.running_mean[:5, None, None], norm.running_var[:5, None, None]
    expected = (x - mean) / torch.sqrt(var + norm.eps)
    assert torch.allclose(norm(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="statistics for 8"):
        norm(torch.randn(1, 9, 4, 4))

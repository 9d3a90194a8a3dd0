"""Discriminators: official key names, output shapes, norm variants."""
import pytest
import torch

from compress.models.discriminators import MultiscaleDiscriminator, NLayerDiscriminator


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_patchgan_instance_keys_and_shape():
    model = NLayerDiscriminator(6)  # pix2pix: concat(A, B)
    assert shapes(model) == {
        "model.0.weight": (64, 6, 4, 4), "model.0.bias": (64,),
        "model.2.weight": (128, 64, 4, 4), "model.2.bias": (128,),
        "model.5.weight": (256, 128, 4, 4), "model.5.bias": (256,),
        "model.8.weight": (512, 256, 4, 4), "model.8.bias": (512,),
        "model.11.weight": (1, 512, 4, 4), "model.11.bias": (1,),
    }
    assert n_params(model) == 2_767_809
    assert model(torch.randn(2, 6, 256, 256)).shape == (2, 1, 30, 30)  # 70x70 receptive patches


def test_patchgan_ndf128_for_pix2pix():
    model = NLayerDiscriminator(6, ndf=128)
    assert shapes(model)["model.8.weight"] == (1024, 512, 4, 4)
    assert n_params(model) == 11_040_641


def test_patchgan_batch_and_none_norms():
    batch = shapes(NLayerDiscriminator(3, ndf=8, norm="batch"))
    assert "model.2.bias" not in batch and batch["model.3.running_mean"] == (16,)
    assert batch["model.3.weight"] == (16,) and "model.0.bias" in batch and "model.11.bias" in batch
    none = shapes(NLayerDiscriminator(3, ndf=8, n_layers=2, norm="none"))
    assert "model.2.bias" not in none and "model.0.bias" in none  # upstream drops inner biases
    with pytest.raises(ValueError):
        NLayerDiscriminator(3, norm="group")


def test_patchgan_n_layers():
    model = NLayerDiscriminator(3, ndf=8, n_layers=1)
    assert shapes(model)["model.2.weight"] == (16, 8, 4, 4)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1, 30, 30)


def test_multiscale_keys_match_spade():
    model = MultiscaleDiscriminator(36 + 3)  # Cityscapes: label map + image
    keys = shapes(model)
    for i in (0, 1):
        d = f"discriminator_{i}"
        assert keys[f"{d}.model0.0.weight"] == (64, 39, 4, 4) and f"{d}.model0.0.bias" in keys
        assert keys[f"{d}.model1.0.0.weight_orig"] == (128, 64, 4, 4)
        assert keys[f"{d}.model1.0.0.weight_u"] == (128,)
        assert keys[f"{d}.model1.0.0.weight_v"] == (64 * 16,)
        assert f"{d}.model1.0.0.bias" not in keys  # the instance norm cancels it
        assert keys[f"{d}.model3.0.0.weight_orig"] == (512, 256, 4, 4)
        assert keys[f"{d}.model4.0.weight"] == (1, 512, 4, 4)
    assert "discriminator_2.model0.0.weight" not in keys
    assert n_params(model) == 5_601_410


def test_multiscale_outputs_every_feature():
    model = MultiscaleDiscriminator(8, ndf=8, n_layers_D=4, num_D=2)
    out = model(torch.randn(1, 8, 64, 128))
    assert len(out) == 2 and all(len(scale) == 5 for scale in out)
    # 4x4 convs with padding 2: stride 2 -> H/2 + 1; stride 1 -> H + 1
    assert [tuple(f.shape) for f in out[0]] == [
        (1, 8, 33, 65), (1, 16, 17, 33), (1, 32, 9, 17), (1, 64, 10, 18), (1, 1, 11, 19)]
    assert tuple(out[1][0].shape) == (1, 8, 17, 33)  # second scale sees a 32x64 input
    assert tuple(out[1][-1].shape) == (1, 1, 7, 11)


def test_multiscale_norm_variants():
    batch = shapes(MultiscaleDiscriminator(4, ndf=8, num_D=1, norm_D="spectralbatch"))
    assert batch["discriminator_0.model1.0.1.running_mean"] == (16,)
    assert "discriminator_0.model1.0.0.weight_orig" in batch
    plain = shapes(MultiscaleDiscriminator(4, ndf=8, num_D=1, norm_D="spectralnone"))
    assert "discriminator_0.model1.0.weight_orig" in plain and "discriminator_0.model1.0.bias" in plain
    no_spectral = shapes(MultiscaleDiscriminator(4, ndf=8, num_D=1, norm_D="instance"))
    assert no_spectral["discriminator_0.model1.0.0.weight"] == (16, 8, 4, 4)
    with pytest.raises(ValueError):
        MultiscaleDiscriminator(4, norm_D="spectralgroup")


def test_multiscale_downsample_ignores_padding():
    x = torch.ones(1, 1, 8, 8)
    assert torch.allclose(MultiscaleDiscriminator.downsample(x), torch.ones(1, 1, 4, 4))

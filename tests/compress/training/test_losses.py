"""compress.training.losses: GAN objectives, feature matching, VGG perceptual loss, image pool."""
import random

import pytest
import torch

from compress.training.losses import (GANLoss, ImagePool, VGGPerceptualLoss, feature_matching_loss,
                                      vgg19_features)


def test_gan_losses_against_closed_forms():
    logits = torch.tensor([[-2.0, 0.0], [0.5, 3.0]])
    lsgan, hinge, vanilla = GANLoss("lsgan"), GANLoss("hinge"), GANLoss("vanilla")
    assert lsgan(logits, True).item() == pytest.approx(((logits - 1) ** 2).mean().item())
    assert lsgan(logits, False).item() == pytest.approx((logits ** 2).mean().item())
    # hinge D: mean(relu(1 - x)) for real, mean(relu(1 + x)) for fake; G: -mean(x)
    assert hinge(logits, True).item() == pytest.approx((3.0 + 1.0 + 0.5 + 0.0) / 4)
    assert hinge(logits, False).item() == pytest.approx((0.0 + 1.0 + 1.5 + 4.0) / 4)
    assert hinge(logits, True, for_discriminator=False).item() == pytest.approx(-0.375)
    expected = torch.nn.functional.softplus(-logits).mean().item()  # -log(sigmoid(x))
    assert vanilla(logits, True).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="lsgan, hinge, vanilla"):
        GANLoss("wgan")
    with pytest.raises(ValueError):
        hinge(logits, False, for_discriminator=False)


def test_multiscale_prediction_is_averaged_over_scales():
    scale_a = [torch.zeros(1, 4, 2, 2), torch.full((1, 1, 2, 2), 2.0)]
    scale_b = [torch.zeros(1, 4, 1, 1), torch.full((1, 1, 1, 1), -1.0)]
    loss = GANLoss("hinge")([scale_a, scale_b], True)
    assert loss.item() == pytest.approx((0.0 + 2.0) / 2)


def test_feature_matching_skips_logits_and_detaches_real():
    real = [[torch.zeros(1, 2, 2, 2, requires_grad=True), torch.zeros(1, 1, 2, 2)]]
    fake = [[torch.ones(1, 2, 2, 2, requires_grad=True), torch.full((1, 1, 2, 2), 100.0)]]
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx(1.0)  # logits (100 vs 0) ignored
    loss.backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None


def test_vgg_loss_loads_torchvision_layout(tmp_path):
    features = vgg19_features()
    assert len(features) == 37 and features[34].out_channels == 512  # torchvision's vgg19().features
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # full-model files carry the classifier too
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    loss = VGGPerceptualLoss(str(path))
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(image, image).item() == 0.0
    other = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(other, image)
    value.backward()
    assert value.item() > 0 and other.grad is not None
    assert all(not p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training  # always frozen


def test_vgg_loss_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        VGGPerceptualLoss(str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="not VGG19 weights|size mismatch"):
        VGGPerceptualLoss(str(bad))


def test_image_pool_fills_then_swaps_and_round_trips():
    random.seed(0)
    pool = ImagePool(3)
    first = torch.arange(2 * 1 * 1 * 1, dtype=torch.float32).view(2, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool.images) == 2
    later = torch.full((8, 1, 1, 1), 9.0)
    out = pool.query(later)
    assert len(pool.images) == 3 and out.shape == later.shape
    swapped = (out != 9.0).sum().item()
    assert 0 < swapped < 8  # some images came from history, some passed through
    state = pool.state_dict()
    clone = ImagePool(3)
    clone.load_state_dict(state)
    random.seed(1)
    a = pool.query(later)
    random.seed(1)
    b = clone.query(later)
    assert torch.equal(a, b)
    assert torch.equal(ImagePool(0).query(later), later)
    empty = ImagePool(2)
    empty.load_state_dict(ImagePool(2).state_dict())
    assert empty.images == []


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    from compress.training.losses import ssim
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 24, 24, generator=gen) * 2 - 1
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-6)
    slightly = ssim(image, image + 0.05 * torch.randn(image.shape, generator=gen)).item()
    very = ssim(image, image + 0.5 * torch.randn(image.shape, generator=gen)).item()
    assert 1.0 > slightly > very
    # a constant shift keeps structure but changes luminance: lower than 1, higher than noise
    assert very < ssim(image, (image + 0.3).clamp(-1, 1)).item() < 1.0
    fake = image.clone().requires_grad_(True)
    (1 - ssim(fake, torch.zeros_like(image))).backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
    with pytest.raises(ValueError, match="NCHW"):
        ssim(image, image[:1])


def test_gaussian_blur_keeps_size_and_constants_and_band_pass_keeps_only_mid_scales():
    from compress.training.losses import band_pass, gaussian_blur
    torch.manual_seed(0)
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    assert band_pass(flat, 1.0, 4.0).abs().max() < 1e-6  # no detail in a constant image
    noise = torch.randn(2, 3, 32, 32)
    blurred = gaussian_blur(noise, 1.0)
    assert blurred.shape == noise.shape and blurred.std() < 0.5 * noise.std()  # pixel noise is removed
    # a wave of period 8 px lies inside the 1-4 px band; one of period 2 px (finer) and a ramp
    # across the image (coarser) are mostly removed
    x = torch.arange(64, dtype=torch.float32)
    def wave(period):
        return torch.sin(2 * torch.pi * x / period).expand(1, 1, 64, 64).contiguous()
    mid = band_pass(wave(8), 1.0, 4.0)[..., 16:-16, 16:-16].std()
    fine = band_pass(wave(2.5), 1.0, 4.0)[..., 16:-16, 16:-16].std()
    coarse = band_pass(wave(64), 1.0, 4.0)[..., 16:-16, 16:-16].std()
    assert mid > 4 * fine and mid > 4 * coarse
    with pytest.raises(ValueError, match="fine_sigma < coarse_sigma"):
        band_pass(noise, 4.0, 1.0)
    with pytest.raises(ValueError, match="larger than"):
        gaussian_blur(torch.zeros(1, 1, 8, 8), 4.0)

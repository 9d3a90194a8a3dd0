"""compress.distillation.style: perceptual and style (Gram) terms on a frozen segmenter's
encoder features, and their switches in the distillation objective."""
import pytest
import torch

from compress.distillation.style import FeatureTerms, gram
from compress.metrics.segmenter import UNetSegmenter


def tiny_segmenter(seed=0):
    torch.manual_seed(seed)
    return UNetSegmenter(num_classes=3, width=4, depth=2, stem_stride=2)


def test_gram_is_the_normalised_channel_correlation():
    features = torch.arange(24, dtype=torch.float32).reshape(1, 2, 3, 4)
    flat = features.reshape(2, 12)
    torch.testing.assert_close(gram(features)[0], flat @ flat.T / 24)


def test_terms_vanish_on_equal_images_and_train_only_the_student():
    terms = FeatureTerms(tiny_segmenter())
    terms.train(True)
    assert not terms.training and not terms.extractor.training  # batch-norm statistics stay fixed
    teacher = torch.rand(2, 3, 32, 32) * 2 - 1
    perceptual, style = terms(teacher.clone(), teacher)
    assert perceptual.item() == 0 and style.item() == 0
    student = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    perceptual, style = terms(student, teacher)
    features = terms.extractor.encoder_features(student)
    assert len(features) == 2 and features[1].shape[2:] == (8, 8)  # stem /2, then one pooling
    (perceptual + style).backward()
    assert perceptual.item() > 0 and style.item() > 0 and student.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in terms.extractor.parameters())
    with pytest.raises(ValueError, match="UNetSegmenter"):
        FeatureTerms(torch.nn.Conv2d(3, 3, 1))


def test_the_objective_adds_them_only_when_switched_on():
    from tests.compress.distillation.test_objective import SPACE, batch, make_recipe
    from compress.distillation.objective import fixed_sampler
    terms = FeatureTerms(tiny_segmenter())
    recipe = make_recipe(fixed_sampler(SPACE.smallest()), adaptors=False, lambda_gan=0.0, lambda_recon=0.0,
                         feature_terms=terms, lambda_perceptual=2.0, lambda_style=300.0)
    data = batch()
    with torch.no_grad():
        fake = recipe.modules["G"](data["A"], config=SPACE.smallest())
        perceptual, style = terms(fake, recipe.teacher(data["A"]))
    losses = recipe.train_step(data)
    assert abs(losses["G_perceptual"] - 2.0 * perceptual.item()) < 1e-4
    assert abs(losses["G_style"] - 300.0 * style.item()) < 1e-4
    assert "feature_terms" not in recipe.modules  # never trained, never saved
    with pytest.raises(ValueError, match="need feature_terms"):
        make_recipe(fixed_sampler(None), lambda_style=1.0)


def test_stage_settings_ask_for_the_network():
    from compress.distillation.stage_config import StageConfig
    with pytest.raises(ValueError, match="set style_network"):
        StageConfig(dataroot="x", teacher="t.safetensors", lambda_style=1.0)

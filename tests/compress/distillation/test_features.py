"""compress.distillation.features: mapped layers, forward hooks, width-agnostic adaptors, the MSE loss."""
import pytest
import torch
import torch.nn.functional as F

from compress.distillation.features import Adaptors, FeatureHooks, distill_loss, feature_widths, mapped_layers
from compress.models import build_generator


def test_mapped_layers_and_their_widths():
    teacher = build_generator("resnet_9blocks", ngf=4)
    assert mapped_layers(teacher) == ("model.9", "model.12", "model.15", "model.18")
    assert feature_widths(teacher) == [16] * 4
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=8, config="4_4_4_4_4_4_4_4")
    assert feature_widths(supernet) == [32] * 4  # maximum width, whatever the active config
    sub = build_generator("sub_mobile_resnet_9blocks", config="8_4_6_8_4_6_4_8")
    assert feature_widths(sub) == [24] * 4
    spade = build_generator("spade", semantic_nc=5, ngf=4, crop_size=64)
    assert mapped_layers(spade) == ("head_0", "G_middle_1", "up_1") and feature_widths(spade) == [64, 64, 16]
    super_spade = build_generator("super_mobile_spade", semantic_nc=5, ngf=4, crop_size=64)
    assert feature_widths(super_spade) == [64, 64, 16]
    sub_spade = super_spade.make_subnet("2_4_4_4_4_3_2_2")
    assert feature_widths(sub_spade) == [32, 32, 12]


def test_hooks_capture_the_mapped_outputs_only_inside_run():
    torch.manual_seed(0)
    model = build_generator("resnet_9blocks", ngf=4).eval()
    hooks = FeatureHooks(model, mapped_layers(model))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out, features = hooks.run(model, x)
        torch.testing.assert_close(features[0], model.model[:10](x))
        torch.testing.assert_close(features[3], model.model[:19](x))
        torch.testing.assert_close(out, model(x))
        model(x)  # an ordinary forward records nothing and leaves earlier results alone
    assert hooks._sink is None and [f.shape[1] for f in features] == [16] * 4
    hooks.remove()
    with pytest.raises(ValueError, match="no module"):
        FeatureHooks(model, ["model.99"])


def test_supernet_features_follow_the_sampled_config():
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=8)
    hooks = FeatureHooks(supernet, mapped_layers(supernet))
    with torch.no_grad():
        _, features = hooks.run(supernet, torch.zeros(1, 3, 32, 32), config="8_8_4_8_8_8_8_8")
    assert [f.shape[1] for f in features] == [16] * 4  # trunk = 4 * c2


def test_adaptors_accept_any_student_width():
    torch.manual_seed(1)
    adaptors = Adaptors([32, 32], [16, 8])
    x = torch.randn(2, 8, 5, 5)
    wide = torch.randn(2, 32, 5, 5)
    narrow_out, wide_out = adaptors([x, wide])
    conv = adaptors.convs[0]
    torch.testing.assert_close(narrow_out, F.conv2d(x, conv.weight[:, :8], conv.bias))
    assert wide_out.shape == (2, 8, 5, 5) and conv.bias is not None
    assert sorted(adaptors.state_dict()) == ["convs.0.bias", "convs.0.weight", "convs.1.bias",
                                             "convs.1.weight"]
    with pytest.raises(ValueError, match="exceeds"):
        adaptors([torch.zeros(1, 40, 2, 2), wide])


def test_distill_loss_is_the_sum_of_mses():
    torch.manual_seed(2)
    a, b = [torch.randn(2, 4, 3, 3) for _ in range(2)], [torch.randn(2, 4, 3, 3) for _ in range(2)]
    expected = F.mse_loss(a[0], b[0]) + F.mse_loss(a[1], b[1])
    torch.testing.assert_close(distill_loss(a, b), expected)
    assert distill_loss(a, a).item() == 0.0
    adaptors = Adaptors([4], [4])  # identity adaptor, same features: zero loss
    with torch.no_grad():
        adaptors.convs[0].weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        adaptors.convs[0].bias.zero_()
    assert distill_loss(adaptors([a[0]]), [a[0]]).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="does not match"):
        distill_loss([torch.zeros(1, 4, 2, 2)], [torch.zeros(1, 4, 3, 3)])

"""compress.models.pruning: L1 channel selection, index propagation, residual trunk sharing, exactness."""
import pytest
import torch

from compress.distillation.features import FeatureHooks
from compress.models import build_generator
from compress.models.pruning import channel_plan, prune_resnet, top_l1_channels


def test_top_l1_channels_picks_the_largest_filters_in_order():
    weight = torch.zeros(5, 2, 1, 1)
    weight[:, 0, 0, 0] = torch.tensor([0.5, -3.0, 1.0, 2.0, -0.1])
    assert top_l1_channels(weight, 3).tolist() == [1, 2, 3]  # |-3|, 1, 2: ascending indices
    transposed = weight.permute(1, 0, 2, 3)  # ConvTranspose layout [in, out, k, k]
    assert top_l1_channels(transposed, 2, dim=1).tolist() == [1, 3]
    with pytest.raises(ValueError, match="cannot keep 6 of 5"):
        top_l1_channels(weight, 6)


def dead_channel_teacher(ngf: int = 4, keep_ngf: int = 3):
    """A mobile teacher whose dropped channels have the smallest filters and feed nothing kept:
    pruning them must be lossless. Returns (teacher, kept indices per layer)."""
    torch.manual_seed(0)
    teacher = build_generator("mobile_resnet_9blocks", ngf=ngf)
    sd = {k: v.clone() for k, v in teacher.state_dict().items()}
    gen = torch.Generator().manual_seed(1)

    def dead(width, keep):
        return torch.randperm(width, generator=gen)[:width - keep]

    def shrink(key, channels, dim=0):  # make these filters the weakest by L1
        weight = sd[f"{key}.weight"]
        weight.index_fill_(dim, channels, 1e-3)
        sd[f"{key}.bias"][channels] *= 1e-3

    def cut(key, channels, dim=1):  # consumers ignore them
        sd[f"{key}.weight"].index_fill_(dim, channels, 0.0)

    kept = {}
    stem, down, trunk = dead(ngf, keep_ngf), dead(2 * ngf, 2 * keep_ngf), dead(4 * ngf, 4 * keep_ngf)
    shrink("model.1", stem), cut("model.4", stem)
    shrink("model.4", down), cut("model.7", down)
    shrink("model.7", trunk), cut("model.19", trunk, dim=0)
    for b in range(10, 19):
        block = f"model.{b}.conv_block"
        inner = dead(4 * ngf, 4 * keep_ngf)
        cut(f"{block}.1.conv.2", trunk)
        shrink(f"{block}.1.conv.2", inner), cut(f"{block}.6.conv.2", inner)
        kept[f"{block}.1"] = inner
    up1, up2 = dead(2 * ngf, 2 * keep_ngf), dead(ngf, keep_ngf)
    shrink("model.19", up1, dim=1), cut("model.22", up1, dim=0)
    shrink("model.22", up2, dim=1), cut("model.26", up2)
    teacher.load_state_dict(sd)
    kept.update({"model.1": stem, "model.4": down, "model.7": trunk, "model.19": up1, "model.22": up2})
    widths = {"model.1": ngf, "model.4": 2 * ngf, "model.7": 4 * ngf, "model.19": 2 * ngf, "model.22": ngf}
    complement = {k: sorted(set(range(widths.get(k, 4 * ngf))) - set(v.tolist())) for k, v in kept.items()}
    return teacher.eval(), complement


def test_pruned_student_computes_exactly_the_teachers_kept_channels():
    teacher, expected = dead_channel_teacher()
    student = prune_resnet(teacher, 3).eval()
    plan = channel_plan(teacher, student.widths)
    for key, indices in expected.items():
        assert plan[key].tolist() == indices, key  # the weak, unused channels are the ones dropped
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    layers = ("model.9", "model.12", "model.18", "model.21")
    with torch.no_grad():
        t_out, t_feats = FeatureHooks(teacher, layers).run(teacher, x)
        s_out, s_feats = FeatureHooks(student, layers).run(student, x)
    trunk = plan["model.7"]
    for name, t, s, index in zip(layers, t_feats, s_feats, [trunk, trunk, trunk, plan["model.19"]]):
        torch.testing.assert_close(s, t[:, index], rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(s_out, t_out, rtol=1e-4, atol=1e-5)
    assert (s_out - t_out).abs().max() < 1e-4 and t_out.std() > 0.01


def test_kept_channels_are_the_top_l1_filters_and_weights_are_copied():
    torch.manual_seed(5)
    teacher = build_generator("mobile_resnet_9blocks", ngf=8)
    student = prune_resnet(teacher, 6)
    plan = channel_plan(teacher, student.widths)
    t, s = teacher.state_dict(), student.state_dict()
    stem_l1 = t["model.1.weight"].abs().sum((1, 2, 3))
    assert plan["model.1"].tolist() == sorted(stem_l1.topk(6).indices.tolist())
    inner_l1 = t["model.13.conv_block.1.conv.2.weight"].abs().sum((1, 2, 3))
    assert plan["model.13.conv_block.1"].tolist() == sorted(inner_l1.topk(24).indices.tolist())
    up_l1 = t["model.19.weight"].abs().sum((0, 2, 3))  # ConvTranspose: output channels on dim 1
    assert plan["model.19"].tolist() == sorted(up_l1.topk(12).indices.tolist())
    assert all(torch.equal(plan[f"model.{b}.conv_block.6"], plan["model.7"]) for b in range(10, 19))
    # propagation: rows follow this layer's choice, columns the previous layer's
    assert torch.equal(s["model.4.weight"], t["model.4.weight"][plan["model.4"]][:, plan["model.1"]])
    assert torch.equal(s["model.4.bias"], t["model.4.bias"][plan["model.4"]])
    dw = "model.11.conv_block.6.conv.0.weight"  # depthwise follows its input (the block's inner) indices
    assert torch.equal(s[dw], t[dw][plan["model.11.conv_block.1"]])
    pw = "model.11.conv_block.6.conv.2.weight"
    assert torch.equal(s[pw], t[pw][plan["model.7"]][:, plan["model.11.conv_block.1"]])
    assert torch.equal(s["model.22.weight"], t["model.22.weight"][plan["model.19"]][:, plan["model.22"]])
    assert torch.equal(s["model.26.weight"], t["model.26.weight"][:, plan["model.22"]])
    assert torch.equal(s["model.26.bias"], t["model.26.bias"])


def test_prune_to_a_sub_network_and_dense_teachers():
    torch.manual_seed(2)
    mobile = build_generator("mobile_resnet_9blocks", ngf=8)
    sub = prune_resnet(mobile, "8_4_6_8_4_6_4_8")
    assert type(sub).__name__ == "SubMobileResnetGenerator" and sub.config == "8_4_6_8_4_6_4_8"
    assert sub(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    dense = prune_resnet(build_generator("resnet_9blocks", ngf=4), 2)
    assert type(dense).__name__ == "ResnetGenerator" and dense.ngf == 2
    with pytest.raises(ValueError, match="wider than the teacher"):
        prune_resnet(mobile, 12)
    with pytest.raises(ValueError, match="give an int ngf"):
        prune_resnet(build_generator("resnet_9blocks", ngf=4), "4_4_4_4_4_4_4_4")
    with pytest.raises(ValueError, match="takes a resnet_9blocks, mobile_resnet_9blocks or sub_mobile"):
        prune_resnet(build_generator("super_mobile_resnet_9blocks", ngf=4), 2)


def test_a_sub_network_prunes_into_a_narrower_sub_network():
    """Narrowing a trained compact student: top-L1 channels of each layer, wider spots refused."""
    torch.manual_seed(3)
    source = build_generator("sub_mobile_resnet_9blocks", config="8_4_8_8_4_4_4_4").eval()
    narrow = prune_resnet(source, "4_4_8_4_4_4_4_2").eval()
    assert type(narrow).__name__ == "SubMobileResnetGenerator" and narrow.config == "4_4_8_4_4_4_4_2"
    plan = channel_plan(source, narrow.widths)
    s, n = source.state_dict(), narrow.state_dict()
    stem_l1 = s["model.1.weight"].abs().sum((1, 2, 3))
    assert plan["model.1"].tolist() == sorted(stem_l1.topk(4).indices.tolist())
    assert torch.equal(n["model.4.weight"], s["model.4.weight"][:, plan["model.1"]])  # down1 kept whole
    inner = "model.10.conv_block.1.conv.2.weight"  # first third: 32 -> 16 inner channels
    assert torch.equal(n[inner], s[inner][plan["model.10.conv_block.1"]])
    assert n["model.16.conv_block.1.conv.2.weight"].shape == s["model.16.conv_block.1.conv.2.weight"].shape
    assert torch.equal(n["model.26.weight"], s["model.26.weight"][:, plan["model.22"]])
    assert narrow(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"wider than the teacher \(config 8_4_8_8_4_4_4_4\)"):
        prune_resnet(source, "8_4_8_8_4_4_4_8")

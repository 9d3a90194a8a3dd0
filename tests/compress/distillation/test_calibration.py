"""compress.distillation.calibration: batch-norm re-calibration of (SPADE) sub-networks."""
import pytest
import torch
from torch import nn

from compress.models import build_generator, extract_subnet
from compress.supernet import calibrate_batchnorm
from compress.distillation.calibration import calibration_batches, preserved_buffers


class Tiny(nn.Module):
    family = "resnet"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        self.norm = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.norm(self.conv(x)))


def test_statistics_are_the_average_over_the_calibration_batches():
    torch.manual_seed(0)
    model = Tiny()
    model.norm.running_mean.fill_(7.0)  # stale statistics
    batches = [torch.randn(4, 2, 3, 3) + i for i in range(3)]
    model.train()
    assert calibrate_batchnorm(model, batches) == 3
    with torch.no_grad():
        features = [model.conv(b) for b in batches]
    means = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
    variances = torch.stack([f.var((0, 2, 3), unbiased=True) for f in features]).mean(0)
    torch.testing.assert_close(model.norm.running_mean, means)
    torch.testing.assert_close(model.norm.running_var, variances)
    assert not model.training and not model.norm.training and model.norm.momentum == 0.1
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(model(x), model(x))  # eval mode: dropout off
    with pytest.raises(ValueError, match="no batches"):
        calibrate_batchnorm(model, [])


def test_calibrated_supernet_config_equals_the_calibrated_extracted_subnet():
    torch.manual_seed(1)
    supernet = build_generator("super_mobile_spade", semantic_nc=5, ngf=4, crop_size=64)
    seg = [torch.nn.functional.one_hot(torch.randint(0, 5, (2, 64, 64)), 5).permute(0, 3, 1, 2).float()
           for _ in range(2)]
    config = "2_4_2_4_2_3_4_2"
    subnet = extract_subnet(supernet, config)
    calibrate_batchnorm(supernet, seg, config=config)
    calibrate_batchnorm(subnet, [{"A": s} for s in seg])  # dataset batches work too
    with torch.no_grad():
        torch.testing.assert_close(subnet(seg[0]), supernet(seg[0], config=config), rtol=1e-4, atol=1e-5)
    full = supernet.state_dict()["head_0.norm_0.param_free_norm.running_mean"]
    assert full[:32].abs().sum() > 0 and full[32:].abs().sum() == 0  # padded channels stay zero


def test_preserved_buffers_undo_a_calibration_and_batches_are_fixed():
    torch.manual_seed(2)
    model = Tiny()
    before = model.norm.running_mean.clone()
    with preserved_buffers(model):
        calibrate_batchnorm(model, [torch.randn(4, 2, 3, 3)])
        assert not torch.equal(model.norm.running_mean, before)
    assert torch.equal(model.norm.running_mean, before)
    dataset = [{"A": torch.full((2, 1, 1), float(i))} for i in range(5)]
    batches = list(calibration_batches(dataset, images=4, batch_size=3))
    assert [b.shape[0] for b in batches] == [3, 1] and batches[1].flatten().tolist() == [3.0, 3.0]

"""PSNR between student and teacher outputs."""
import math

import numpy as np
import pytest
import torch

from compress.metrics import psnr


def test_uint8_known_value_and_identity():
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    b = a + 1  # MSE 1 -> 20 log10(255)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255))
    assert psnr(a, a) == math.inf


def test_generator_range_tensors():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.2)  # MSE 0.04, range 2 -> 10 log10(4 / 0.04) = 20 dB
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, b, data_range=1.0) == pytest.approx(10 * math.log10(1 / 0.04))


def test_batches_average_per_image_psnr():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.stack([torch.full((3, 4, 4), 0.2), torch.full((3, 4, 4), 0.02)])
    assert psnr(a, b) == pytest.approx((20.0 + 40.0) / 2)
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(a, b[:1])

"""CutMix for distillation: one box, pasted from the rolled batch into inputs and photos alike."""
import random

import pytest
import torch

from compress.data.mixing import cutmix_box, cutmix_pairs


def test_box_stays_inside_the_image_and_its_area_varies():
    rng = random.Random(0)
    areas = []
    for _ in range(500):
        top, left, h, w = cutmix_box(32, 48, rng)
        assert 0 <= top and 0 <= left and top + h <= 32 and left + w <= 48
        areas.append(h * w / (32 * 48))
    assert min(areas) < 0.05 and max(areas) > 0.6  # lambda ~ U(0, 1): small and large boxes


def test_same_box_from_the_partner_in_inputs_and_photos():
    a = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 16, 16)
    b = 10 + torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 16, 16)
    mixed_a, mixed_b = cutmix_pairs(a, b, random.Random(3))
    changed_a = mixed_a != a
    assert changed_a.any() and torch.equal(changed_a, mixed_b != b)  # one box, both halves
    for i in range(4):  # the pasted pixels come from the previous item (roll by one)
        partner = (i - 1) % 4
        assert set(mixed_a[i][changed_a[i]].tolist()) == {float(partner)}
        assert set(mixed_b[i][changed_a[i]].tolist()) == {10.0 + partner}
    assert torch.equal(a, torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 16, 16))  # inputs untouched


def test_single_item_batches_pass_through_and_mismatches_are_refused():
    a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    assert cutmix_pairs(a, b, random.Random(0))[0] is a
    with pytest.raises(ValueError, match="same batch and size"):
        cutmix_pairs(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 4, 4), random.Random(0))

"""app.difference: the heat map and PSNR of |original - compressed|, and the tracker that only
compares outputs of the same request."""
import math

import numpy as np
import pytest

from app.difference import FULL_SCALE_DIFFERENCE, DifferenceTracker, difference_map, psnr_db


def _image(value, shape=(8, 8, 3)):
    return np.full(shape, value, np.uint8)


def test_psnr_of_a_known_offset_and_of_identical_images():
    assert psnr_db(_image(100), _image(110)) == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert psnr_db(_image(7), _image(7)) == math.inf


def test_heat_map_is_dark_where_equal_and_bright_where_far_and_saturates_at_full_scale():
    original = _image(100)
    compressed = original.copy()
    compressed[:, 4:] = 100 + int(FULL_SCALE_DIFFERENCE)  # right half one full scale away
    heat, psnr = difference_map(original, compressed)
    assert heat.shape == (8, 8, 3) and heat.dtype == np.uint8
    assert heat[:, :4].max() < 10  # inferno starts (almost) black
    assert heat[:, 4:].sum(axis=2).min() > 400  # and ends bright yellow
    further = compressed.copy()
    further[:, 4:] = 255  # beyond full scale: the same colour (fixed gain, not normalised)
    assert np.array_equal(difference_map(original, further)[0][:, 4:], heat[:, 4:])
    assert psnr < 20


def test_difference_map_rejects_mismatched_images():
    with pytest.raises(ValueError, match="RGB images of one size"):
        difference_map(_image(0), _image(0, (4, 4, 3)))


def test_tracker_compares_only_outputs_of_the_same_request():
    tracker = DifferenceTracker()
    tracker.enabled = True
    assert tracker.add("original", 1, _image(0)) is None
    assert tracker.add("compressed", 2, _image(10)) is None  # the original is behind
    assert tracker.add("original", 2, _image(20)) is not None and tracker.request_id == 2
    assert tracker.latest[1] == pytest.approx(psnr_db(_image(20), _image(10)))


def test_a_disabled_tracker_keeps_outputs_and_computes_when_enabled():
    tracker = DifferenceTracker()
    assert tracker.add("original", 3, _image(0)) is None
    assert tracker.add("compressed", 3, _image(0, (4, 4, 3))) is None  # disabled: nothing computed
    tracker.enabled = True
    heat, psnr = tracker.update()
    assert heat.shape == (8, 8, 3) and psnr == math.inf  # resized to the original's resolution

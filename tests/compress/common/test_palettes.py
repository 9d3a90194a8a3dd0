"""Palettes: the JSON files agree with the datasets and map colours back to ids."""
import numpy as np
import pytest
from PIL import Image

from compress.common.palettes import available_palettes, load_palette
from tests.conftest import DATASETS


def test_shipped_palettes():
    assert {"facades", "camvid", "cityscapes"} <= set(available_palettes())
    facades = load_palette("facades")
    assert facades.num_classes == 13 and facades.name_of(3) == "window" and facades.background_id == 1
    assert load_palette("camvid").num_classes == 12
    cityscapes = load_palette("cityscapes")
    assert cityscapes.num_classes == 35  # GauGAN's label_nc for Cityscapes


def test_facades_palette_matches_the_dataset_png_palette():
    label = Image.open(next((DATASETS / "facades" / "256" / "val").glob("*.png")))
    assert label.mode == "P"
    png_palette = np.array(label.getpalette()[:13 * 3]).reshape(13, 3)
    assert (load_palette("facades").lut() == png_palette).all()


def test_colorize_and_back_through_jpeg_like_noise():
    palette = load_palette("facades")
    ids = np.random.RandomState(0).randint(1, 13, size=(32, 32)).astype(np.uint8)
    rgb = palette.colorize(ids).astype(np.int16)
    noisy = np.clip(rgb + np.random.RandomState(1).randint(-20, 21, rgb.shape), 0, 255)
    assert (palette.to_ids(noisy.astype(np.uint8)) == ids).all()


def test_bad_label_maps_are_explained():
    palette = load_palette("facades")
    with pytest.raises(ValueError, match="map.png: class ids \\[13\\]"):
        palette.validate(np.full((4, 4), 13, np.uint8), source="map.png")
    with pytest.raises(ValueError, match="2-D"):
        palette.validate(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="available: camvid"):
        load_palette("nope")


def test_colour_lookup_memory_stays_bounded_on_a_huge_map():
    """Every pixel against every class at once needed 17.6 GB at 8000x8000; the block-wise colour
    lookup keeps the peak proportional to a block (here 3000x3000 random colours, the worst case:
    the old way peaked at ~1.3 GB)."""
    import tracemalloc

    import numpy as np

    from compress.common.palettes import load_palette
    palette = load_palette("facades")
    rgb = np.random.default_rng(0).integers(0, 256, (3000, 3000, 3), dtype=np.uint8)
    tracemalloc.start()
    ids, distance = palette.nearest(rgb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert ids.shape == (3000, 3000) and peak < 350e6, f"peak {peak / 1e6:.0f} MB"

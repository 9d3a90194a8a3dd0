"""Pre-processing on real data: facades label maps and photos, edges2shoes sketches."""
import cv2
import numpy as np
import pytest

from compress.common.palettes import load_palette
from engines.base import InputSpec, size_multiple
from engines.preprocess import (image_to_tensor, label_to_color, label_to_onehot,
                                make_preprocessor, resize_image, resize_label_map,
                                sketch_to_tensor, tensor_to_image)
from tests.conftest import DATASETS

FACADES = DATASETS / "facades" / "256" / "val"
EDGES = DATASETS / "edges2shoes_mini"


def read_rgb(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def palette():
    return load_palette("facades")


@pytest.fixture(scope="module")
def facade_labels(palette):
    """Class ids of a real facades label map (the palette PNG decoded to RGB, then snapped)."""
    return palette.to_ids(read_rgb(FACADES / "cmp_b0006.png"))


@pytest.fixture(scope="module")
def edge_sketch():
    """The "A" half of a real edges2shoes pair: black HED edges on a white page."""
    return read_rgb(EDGES / "val" / "106_AB.jpg")[:, :256]


def spec(channels, height=None, width=None, multiple_of=4):
    return InputSpec("input", channels, height, width, multiple_of)


def test_label_map_to_one_hot_with_instance_channel(facade_labels, palette):
    assert set(np.unique(facade_labels)) <= set(range(1, 13)) and len(np.unique(facade_labels)) >= 5
    onehot = label_to_onehot(facade_labels, palette.num_classes, extra_channels=1, palette=palette)
    assert onehot.shape == (1, 14, 256, 256) and onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot[0, :13].sum(axis=0), 1.0)
    np.testing.assert_array_equal(onehot[0, :13].argmax(axis=0), facade_labels)
    assert onehot[0, 13].max() == 0.0  # no instance edges drawn


def test_label_map_to_palette_colours(facade_labels, palette):
    colour = label_to_color(facade_labels, palette)
    assert colour.shape == (1, 3, 256, 256) and -1 <= colour.min() and colour.max() <= 1
    pixels = np.rint((colour[0].transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(pixels, palette.lut()[facade_labels])
    # the colours are those of the dataset's own colourised PNG
    np.testing.assert_array_equal(pixels, read_rgb(FACADES / "cmp_b0006.png"))


def test_photo_round_trips_through_the_unit_range():
    photo = read_rgb(FACADES / "cmp_b0006.jpg")
    tensor = image_to_tensor(photo)
    assert tensor.shape == (1, 3, 256, 256) and tensor.dtype == np.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    np.testing.assert_array_equal(tensor_to_image(tensor), photo)
    gray = image_to_tensor(photo[:, :, 0])
    np.testing.assert_array_equal(gray[0, 0], gray[0, 2])


def test_sketch_is_gray_dark_strokes_on_white(edge_sketch):
    tensor = sketch_to_tensor(edge_sketch)
    assert tensor.shape == (1, 3, 256, 256)
    np.testing.assert_array_equal(tensor[0, 0], tensor[0, 1])
    np.testing.assert_array_equal(tensor[0, 1], tensor[0, 2])
    page = np.median(tensor)
    assert page > 0.95  # the white page maps to +1, as in pix2pix's edges2shoes "A" images
    stroke_share = (tensor[0, 0] < -0.5).mean()
    assert 0.005 < stroke_share < 0.2
    inverted = sketch_to_tensor(255 - edge_sketch, invert=True)
    np.testing.assert_allclose(inverted, tensor, atol=1 / 127.5 + 1e-6)  # gray rounding
    np.testing.assert_array_equal(sketch_to_tensor(edge_sketch[:, :, 1]), sketch_to_tensor(
        np.repeat(edge_sketch[:, :, 1:2], 3, axis=2)))


def test_bad_inputs_get_clear_errors(facade_labels, palette):
    with pytest.raises(ValueError, match="uint8"):
        image_to_tensor(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\) gray or \(H, W, 3\) RGB.*\(8, 8, 2\)"):
        sketch_to_tensor(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="2-D class ids"):
        label_to_onehot(np.zeros((1, 8, 8), np.uint8), 13)
    with pytest.raises(ValueError, match="integers, got dtype float32"):
        label_to_onehot(np.zeros((8, 8), np.float32), 13)
    with pytest.raises(ValueError, match=r"0\.\.12 for this model, got 0\.\.13"):
        label_to_onehot(np.arange(64).reshape(8, 8) % 14, 13)
    with pytest.raises(ValueError, match=r"\[13\] are not in the 'facades' palette"):
        label_to_color(np.full((8, 8), 13), palette)
    with pytest.raises(ValueError, match=r"got -1\.\.0"):
        label_to_onehot(-np.eye(8, dtype=np.int64), 13)
    with pytest.raises(ValueError, match="batch of one"):
        tensor_to_image(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"\[1, 3, H, W\]"):
        tensor_to_image(np.zeros((4, 8, 8), np.float32))
    with pytest.raises(ValueError, match="positive"):
        resize_image(np.zeros((8, 8), np.uint8), (0, 4))


def test_resizing_labels_uses_nearest_and_round_trips(facade_labels):
    small = resize_label_map(facade_labels, (64, 64))
    assert small.shape == (64, 64) and small.dtype == facade_labels.dtype
    assert set(np.unique(small)) <= set(np.unique(facade_labels))  # no blended ids
    np.testing.assert_array_equal(resize_label_map(resize_label_map(small, (256, 256)), (64, 64)), small)
    wide = resize_label_map(facade_labels.astype(np.int64), (128, 512))
    assert wide.dtype == np.int64 and wide.shape == (128, 512)
    assert resize_label_map(facade_labels, (256, 256)) is facade_labels


def test_resizing_images_uses_area_when_shrinking_and_round_trips_closely():
    photo = read_rgb(FACADES / "cmp_b0006.jpg")
    half = resize_image(photo, (128, 128))
    blocks = photo.reshape(128, 2, 128, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(half - blocks).max() <= 1  # area filter = mean of each 2x2 block
    back = resize_image(half, (256, 256))
    assert back.shape == photo.shape
    assert np.abs(back.astype(int) - photo.astype(int)).mean() < 12  # smooth loss, not garbage


def test_preprocessor_choice_follows_metadata_and_channels(palette):
    spade = {"arch": "spade", "palette": "facades", "input_kind": "label",
             "build": {"num_upsampling_layers": "more"}, "resolution": [256, 256]}
    assert size_multiple(spade) == 64 and size_multiple({"arch": "resnet_9blocks"}) == 4
    onehot = make_preprocessor(spade, spec(14, multiple_of=64))
    assert (onehot.mode, onehot.num_classes, onehot.extra_channels) == ("onehot", 13, 1)
    assert onehot.resolution == (256, 256)
    assert make_preprocessor(spade, spec(13, 64, 128)).extra_channels == 0
    with pytest.raises(ValueError, match="fits neither one-hot 'facades' labels"):
        make_preprocessor(spade, spec(3))
    pix2pix = {"arch": "resnet_9blocks", "palette": "facades", "input_kind": "label"}
    assert make_preprocessor(pix2pix, spec(3, 64, 64)).mode == "color"
    with pytest.raises(ValueError, match="names no palette; re-export it with --palette"):
        make_preprocessor(dict(pix2pix, palette=None), spec(3, 64, 64))
    assert make_preprocessor({"arch": "resnet_9blocks", "input_kind": "sketch"}, spec(3)).mode == "sketch"
    assert make_preprocessor({"input_kind": "image"}, spec(3), resolution=(96, 128)).resolution == (96, 128)
    assert make_preprocessor({}, spec(3, 64, 64)).mode == "image"  # no metadata: a 3-channel image
    assert make_preprocessor({}, spec(5, 64, 64)).num_classes == 5  # ... or one-hot classes
    with pytest.raises(ValueError, match="not a multiple of 64"):
        make_preprocessor(spade, spec(14, multiple_of=64), resolution=(96, 96))
    with pytest.raises(ValueError, match="unknown input_kind 'depth'"):
        make_preprocessor({"input_kind": "depth"}, spec(3))


def test_preprocessor_prepares_canvases_at_model_size(facade_labels, edge_sketch):
    pix2pix = {"arch": "resnet_9blocks", "palette": "facades", "input_kind": "label"}
    prepare = make_preprocessor(pix2pix, spec(3, 64, 64))
    batch = prepare(facade_labels)  # 256x256 canvas -> 64x64 model input
    assert batch.shape == (1, 3, 64, 64)
    expected = label_to_color(resize_label_map(facade_labels, (64, 64)), prepare.palette)
    np.testing.assert_array_equal(batch, expected)
    with pytest.raises(ValueError, match="2-D class ids"):
        prepare(read_rgb(FACADES / "cmp_b0006.png"))  # colour image: snap with Palette.to_ids
    with pytest.raises(ValueError, match=r"0\.\.12"):
        prepare(np.full((256, 256), 40, np.uint8))
    sketch = make_preprocessor({"input_kind": "sketch"}, spec(3, 128, 128))
    assert sketch(edge_sketch).shape == (1, 3, 128, 128)
    image = sketch.to_image(np.zeros((1, 3, 128, 128), np.float32), size=(256, 256))
    assert image.shape == (256, 256, 3) and np.all(image == 128)


def test_output_problems_are_named():
    from engines.preprocess import output_problem
    good = np.zeros((1, 3, 8, 8), np.float32)
    assert output_problem(good, (8, 8)) is None
    five_channels = np.zeros((1, 5, 8, 8), np.float32)
    assert output_problem(five_channels) == "output shape (1, 5, 8, 8), expected [1, 3, H, W]"
    nan = good.copy()
    nan[0, 0, 0, :4] = np.nan
    assert output_problem(nan) == "2.1% of the output values are NaN or infinite"
    assert output_problem(good, (16, 16)) == "output is 8x8, but the model runs at 16x16"

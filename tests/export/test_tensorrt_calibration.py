"""INT8 calibration data from real dataset folders (no TensorRT needed): file selection, files
read into the app's canvases and pre-processed by engines.preprocess (checked against the app's
own call on the same pixels), batches, and the calibrator's device copies and table cache on
the fake TensorRT/CUDA."""
import cv2
import numpy as np
import pytest

from compress.common.palettes import load_palette
from engines.base import InputSpec
from engines.preprocess import make_preprocessor
from export.trt_calibration import (calibration_batches, data_kind, input_preprocessor,
                                    load_model_input, make_calibrator, select_calibration_files)
from tests.conftest import DATASETS
from tests.fakes.fake_cuda import MEMORY, fake_polygraphy_cuda
from tests.fakes.fake_tensorrt import make_fake_tensorrt

FACADES = DATASETS / "facades" / "256" / "val"
SHOES = DATASETS / "edges2shoes_mini" / "val"
META = {"arch": "sub_mobile_resnet_9blocks", "input_kind": "label", "palette": "facades"}


def _ids(path):
    return load_palette("facades").to_ids(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))


def test_select_files_by_input_kind_evenly_spread():
    labels = select_calibration_files(str(FACADES), "label", 1000)
    photos = select_calibration_files(str(FACADES), "image", 1000)
    assert len(labels) == len(photos) == 6  # the fixture's facades val pairs
    assert all(p.endswith(".png") for p in labels) and all(p.endswith(".jpg") for p in photos)
    three = select_calibration_files(str(FACADES), "label", 3)
    assert three == [labels[i] for i in (0, 2, 4)]  # evenly spread: item floor(i * 6 / 3)
    assert three == select_calibration_files(str(FACADES), "label", 3)  # deterministic


def test_select_files_errors(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        select_calibration_files(str(tmp_path / "missing"), "label", 5)
    with pytest.raises(ValueError, match="no \\*.png label maps"):
        select_calibration_files(str(tmp_path), "label", 5)
    with pytest.raises(ValueError, match="positive"):
        select_calibration_files(str(FACADES), "label", 0)


def _preprocessor(meta, channels, size=64):
    """What calibration uses for a model with ``meta`` and input [1, channels, size, size]."""
    return input_preprocessor(meta, (1, channels, size, size))


def test_label_maps_become_palette_colours_like_the_app():
    path = FACADES / "cmp_b0006.png"
    ours = load_model_input(str(path), _preprocessor(META, 3))
    app = make_preprocessor(META, InputSpec("input", 3, 64, 64)).prepare(_ids(path))[0]
    assert ours.shape == (3, 64, 64) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, app)
    colours = {tuple(c) for c in ((ours.reshape(3, -1).T + 1) * 127.5).round().astype(int)}
    assert colours <= {tuple(c) for c in load_palette("facades").colors}  # nearest: no blends


def test_label_maps_become_one_hot_for_spade_channels(tmp_path):
    path = FACADES / "cmp_b0016.png"
    onehot = load_model_input(str(path), _preprocessor(META, 13, 256))
    assert onehot.shape == (13, 256, 256)
    np.testing.assert_array_equal(onehot.sum(axis=0), 1.0)
    np.testing.assert_array_equal(onehot.argmax(axis=0), _ids(path))
    with pytest.raises(ValueError, match="model: .* 5 input channels, which fits neither"):
        _preprocessor(META, 5)
    with pytest.raises(ValueError, match="names no palette"):
        _preprocessor({"input_kind": "label"}, 3)
    no_palette = _preprocessor({"input_kind": "label"}, 5)  # one-hot: every channel a class
    with pytest.raises(ValueError, match="cmp_b0016.png: a colour label map needs the model's palette"):
        load_model_input(str(path), no_palette)
    ids = tmp_path / "ids.png"
    cv2.imwrite(str(ids), _ids(path))  # 8-bit class ids 0..12
    with pytest.raises(ValueError, match="ids.png: label map: class ids must lie in 0..4"):
        load_model_input(str(ids), no_palette)
    np.testing.assert_array_equal(load_model_input(str(ids), _preprocessor(META, 13, 256)), onehot)


def test_photos_match_the_app_preprocessing():
    path = FACADES / "cmp_b0006.jpg"
    photo = _preprocessor({"input_kind": "image"}, 3)
    ours = load_model_input(str(path), photo)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    app = make_preprocessor({"input_kind": "image"}, InputSpec("input", 3, 64, 64)).prepare(rgb)[0]
    np.testing.assert_array_equal(ours, app)
    assert -1.0 <= ours.min() < -0.5 and 0.5 < ours.max() <= 1.0
    assert data_kind(photo) == "image" and data_kind(_preprocessor(META, 3)) == "label"


def test_sketch_pairs_keep_their_left_half_in_gray():
    path = sorted(SHOES.glob("*_AB.jpg"))[0]
    sketch = load_model_input(str(path), _preprocessor({"input_kind": "sketch"}, 3))
    np.testing.assert_array_equal(sketch[0], sketch[1])
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    left = image[:, : image.shape[1] // 2]
    app = make_preprocessor({"input_kind": "sketch"}, InputSpec("input", 3, 64, 64)).prepare(left)[0]
    np.testing.assert_array_equal(sketch, app)


def test_unreadable_image(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_model_input(str(bad), _preprocessor(META, 3))


def test_batches_are_full_nchw_float32():
    files = select_calibration_files(str(FACADES), "label", 5)
    labels = _preprocessor(META, 3)
    batches = list(calibration_batches(files, labels, 2))
    assert len(batches) == 2  # the fifth file would make a partial batch: dropped
    assert all(b.shape == (2, 3, 64, 64) and b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(batches[1][0], load_model_input(files[2], labels))


def test_calibrator_copies_each_batch_to_the_device_and_caches_its_table(tmp_path):
    trt = make_fake_tensorrt("8.5.2.2")
    batches = [np.full((1, 3, 8, 8), v, np.float32) for v in (0.25, -0.5)]
    seen = []
    table = tmp_path / "m.calib"
    before = MEMORY.live
    calibrator = make_calibrator(trt, iter(batches), (1, 3, 8, 8), str(table),
                                 cuda=fake_polygraphy_cuda(), progress=seen.append)
    assert isinstance(calibrator, trt.IInt8EntropyCalibrator2)
    assert calibrator.get_batch_size() == 1 and calibrator.read_calibration_cache() is None
    for expected in batches:
        (pointer,) = calibrator.get_batch(["input"])
        np.testing.assert_array_equal(MEMORY.read(pointer, (1, 3, 8, 8), np.float32), expected)
    assert calibrator.get_batch(["input"]) is None and seen == [1, 2]
    calibrator.write_calibration_cache(b"table")
    assert table.read_bytes() == b"table" and calibrator.read_calibration_cache() == b"table"
    calibrator.free()
    assert MEMORY.live == before


def test_calibrator_rejects_wrong_batches(tmp_path):
    trt = make_fake_tensorrt("10.3.0")
    calibrator = make_calibrator(trt, iter([np.zeros((1, 3, 4, 4), np.float32)]), (1, 3, 8, 8),
                                 str(tmp_path / "c"), cuda=fake_polygraphy_cuda())
    # never raised into TensorRT (its wrapper would take it for the end of the data): recorded
    assert calibrator.get_batch(["input"]) is None
    assert calibrator.error == "RuntimeError: calibration batch of shape (1, 3, 4, 4), expected (1, 3, 8, 8)"
    assert calibrator.get_batch(["a", "b"]) is None and "one input" in calibrator.error


def test_no_calibrator_class_on_tensorrt_11(tmp_path):
    with pytest.raises(AttributeError, match="IInt8EntropyCalibrator2"):
        make_calibrator(make_fake_tensorrt("11.4.0"), iter([]), (1, 3, 8, 8), str(tmp_path / "c"),
                        cuda=fake_polygraphy_cuda())

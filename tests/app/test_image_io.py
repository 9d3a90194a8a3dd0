"""numpy <-> QImage, label-map PNG round trips, colour snapping, sketches, composites."""
import numpy as np
import pytest
from PyQt6.QtGui import QImage

from app import image_io
from compress.common.palettes import load_palette

FACADES = load_palette("facades")


def test_numpy_qimage_round_trip_rgb_and_gray():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 13, 3), dtype=np.uint8)  # odd width: padded scan lines
    np.testing.assert_array_equal(image_io.qimage_to_rgb(image_io.numpy_to_qimage(rgb)), rgb)
    gray = rng.integers(0, 256, (5, 9), dtype=np.uint8)
    image = image_io.numpy_to_qimage(gray)
    assert image.format() == QImage.Format.Format_Grayscale8
    np.testing.assert_array_equal(image_io.qimage_indices(image), gray)


def test_label_map_png_round_trip_keeps_ids_and_shows_colours(tmp_path):
    ids = np.ones((24, 40), np.uint8)
    ids[4:10, 5:30] = 3
    ids[12:, :] = 12
    path = str(tmp_path / "map.png")
    image_io.write_label_map(path, ids, FACADES)
    image = QImage(path)
    assert image.format() == QImage.Format.Format_Indexed8  # a palette PNG
    assert image_io.qimage_to_rgb(image)[5, 6].tolist() == list(FACADES.colors[3])
    np.testing.assert_array_equal(image_io.read_label_map(path, FACADES, (24, 40)), ids)
    # nearest resize keeps ids pure
    small = image_io.read_label_map(path, FACADES, (12, 20))
    assert set(np.unique(small)) <= {1, 3, 12}


def test_dataset_label_png_reads_as_ids(sample_label_map):
    ids = image_io.read_label_map(str(sample_label_map), FACADES, (256, 256))
    assert ids.shape == (256, 256) and set(np.unique(ids).tolist()) == set(range(1, 11))


def test_colour_images_are_snapped_to_the_palette(tmp_path):
    ids = np.full((16, 16), 2, np.uint8)
    ids[:, 8:] = 9
    rgb = FACADES.lut()[ids].astype(np.int16) + 6  # JPEG-like colour noise
    path = str(tmp_path / "colour.png")
    image_io.numpy_to_qimage(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    np.testing.assert_array_equal(image_io.read_label_map(path, FACADES, (16, 16)), ids)


def test_bad_ids_and_bad_files_are_reported(tmp_path):
    gray = np.full((8, 8), 40, np.uint8)  # id 40 is not a facades class
    path = str(tmp_path / "gray.png")
    image_io.numpy_to_qimage(gray).save(path)
    with pytest.raises(ValueError, match="not in the 'facades' palette"):
        image_io.read_label_map(path, FACADES, (8, 8))
    with pytest.raises(FileNotFoundError):
        image_io.read_label_map(str(tmp_path / "missing.png"), FACADES, (8, 8))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        image_io.read_label_map(str(tmp_path / "junk.png"), FACADES, (8, 8))
    with pytest.raises(ValueError, match=".png"):
        image_io.write_label_map(str(tmp_path / "map.jpg"), np.ones((4, 4), np.uint8), FACADES)


def test_read_sketch_keeps_the_left_half_of_paired_files(tmp_path):
    pair = np.zeros((32, 64), np.uint8)
    pair[:, :32] = 255  # white sketch page on the left, dark photo on the right
    pair[10, :32] = 0
    path = str(tmp_path / "pair.png")
    image_io.numpy_to_qimage(pair).save(path)
    sketch = image_io.read_sketch(path, (32, 32))
    assert sketch.shape == (32, 32) and sketch.mean() > 240 and sketch[10].max() == 0


def test_composite_places_images_side_by_side(qapp, tmp_path):  # text needs a QGuiApplication
    a = image_io.numpy_to_qimage(np.zeros((64, 64, 3), np.uint8))
    b = image_io.numpy_to_qimage(np.full((64, 64, 3), 255, np.uint8))
    sheet = image_io.composite([a, b, None], ["input", "original", "compressed"], height=64, gap=8)
    assert sheet.width() == 3 * 64 + 4 * 8 and sheet.height() > 64
    pixels = image_io.qimage_to_rgb(sheet)
    assert pixels[40, 8 + 32].tolist() == [0, 0, 0] and pixels[40, 80 + 32].tolist() == [255, 255, 255]
    path = str(tmp_path / "out" / "composite.png")
    image_io.write_image(path, sheet)
    assert QImage(path).size() == sheet.size()

"""Bad data gets a clear ValueError that names the file (or folder) to fix."""
import numpy as np
import pytest
from PIL import Image

from compress.data import build_dataset
from tests.conftest import DATASETS

DATA = DATASETS


def _pair(folder, stem, ids, size=(16, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, ids, dtype=np.uint8), mode="L").save(folder / f"{stem}.png")
    Image.fromarray(np.zeros(size + (3,), dtype=np.uint8)).save(folder / f"{stem}.jpg")


def test_photo_without_label_is_named(tmp_path):
    _pair(tmp_path / "train", "a", 1)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "train" / "lonely.jpg")
    with pytest.raises(ValueError, match=r"lonely\.jpg has no label map"):
        build_dataset("labelmap", str(tmp_path), "train", palette="facades")


def test_label_without_photo_is_named(tmp_path):
    _pair(tmp_path / "train", "a", 1)
    Image.fromarray(np.ones((16, 16), np.uint8), mode="L").save(tmp_path / "train" / "orphan.png")
    with pytest.raises(ValueError, match=r"orphan\.png has no photo"):
        build_dataset("labelmap", str(tmp_path), "train", palette="facades")


def test_unreadable_image_is_named(tmp_path):
    _pair(tmp_path / "train", "a", 1)
    (tmp_path / "train" / "a.jpg").write_bytes(b"definitely not a jpeg")
    ds = build_dataset("labelmap", str(tmp_path), "train", palette="facades")
    with pytest.raises(ValueError, match=r"a\.jpg: unreadable image"):
        ds[0]


def test_truncated_label_is_named(tmp_path):
    _pair(tmp_path / "train", "a", 1, size=(64, 64))
    path = tmp_path / "train" / "a.png"
    path.write_bytes(path.read_bytes()[:60])
    ds = build_dataset("labelmap", str(tmp_path), "train", palette="facades")
    with pytest.raises(ValueError, match=r"a\.png"):
        ds[0]


def test_label_ids_outside_the_palette_are_named(tmp_path):
    _pair(tmp_path / "train", "bad", 40)
    ds = build_dataset("labelmap", str(tmp_path), "train", palette="facades")
    with pytest.raises(ValueError, match=r"bad\.png: class ids \[40\] are not in the 'facades' palette"):
        ds[0]


def test_photo_label_size_mismatch_is_named(tmp_path):
    _pair(tmp_path / "train", "a", 1)
    Image.fromarray(np.zeros((20, 16, 3), np.uint8)).save(tmp_path / "train" / "a.jpg")
    ds = build_dataset("labelmap", str(tmp_path), "train", palette="facades")
    with pytest.raises(ValueError, match=r"a\.png is 16x16 but its photo .*a\.jpg is 16x20"):
        ds[0]


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match=r"train: no photos or label maps"):
        build_dataset("labelmap", str(tmp_path), "train", palette="facades")
    with pytest.raises(ValueError, match=r"val: no such folder"):
        build_dataset("labelmap", str(tmp_path), "val", palette="facades")
    with pytest.raises(ValueError, match="dataset folder not found"):
        build_dataset("aligned", str(tmp_path / "nowhere"))


def test_wrong_mode_for_layout_is_explained():
    with pytest.raises(ValueError, match="looks like a mode='aligned' dataset"):
        build_dataset("labelmap", str(DATA / "edges2shoes_mini"), "train", palette="facades")
    with pytest.raises(ValueError, match="looks like a mode='labelmap' dataset"):
        build_dataset("aligned", str(DATA / "facades" / "256"), "train")
    with pytest.raises(ValueError, match="looks like a mode='labelmap' dataset"):
        build_dataset("unaligned", str(DATA / "facades" / "256"), "train")
    with pytest.raises(ValueError, match="looks like a mode='aligned' dataset"):
        build_dataset("cityscapes", str(DATA / "edges2shoes_mini"), "train")


def test_bad_arguments():
    root = str(DATA / "facades" / "256")
    with pytest.raises(ValueError, match="needs palette"):
        build_dataset("labelmap", root, "train")
    with pytest.raises(ValueError, match="unknown dataset mode"):
        build_dataset("pairs", root)
    with pytest.raises(ValueError, match="direction"):
        build_dataset("labelmap", root, palette="facades", direction="AB")
    with pytest.raises(ValueError, match="instance_edges"):
        build_dataset("labelmap", root, palette="facades", input_encoding="onehot", instance_edges=True)
    with pytest.raises(ValueError, match="no palette 'nope'"):
        build_dataset("labelmap", root, palette="nope")

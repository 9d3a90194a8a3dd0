"""Paired transforms: photo and label map get the same resize, crop and flip."""
import numpy as np
import pytest
import torch
from PIL import Image

from compress.data import build_dataset, instance_edges
from compress.data.transforms import as_hw, draw_transform
from compress.common.palettes import load_palette

PALETTE = load_palette("facades")


def _synthetic_labelmap(root, n=3, size=(48, 64), block=8, seed=0):
    """Photos that *are* their label maps' palette colours (in JPEG-aligned 8x8 blocks, saved at
    quality 100 without chroma subsampling), so the label of every photo pixel is known."""
    rng = np.random.default_rng(seed)
    folder = root / "train"
    folder.mkdir(parents=True)
    for i in range(n):
        coarse = rng.integers(1, 13, size=(size[0] // block, size[1] // block))
        ids = np.kron(coarse, np.ones((block, block), dtype=np.int64)).astype(np.uint8)
        Image.fromarray(ids, mode="L").save(folder / f"img{i}.png")
        Image.fromarray(PALETTE.colorize(ids)).save(folder / f"img{i}.jpg", quality=100, subsampling=0)
    return str(root)


def test_crop_and_flip_apply_identically_to_photo_and_label(tmp_path):
    root = _synthetic_labelmap(tmp_path)
    ds = build_dataset("labelmap", root, "train", palette="facades", crop_size=(40, 36), flip=True)
    flipped = set()
    for epoch in range(6):
        for index in range(len(ds)):
            item = ds[(index, epoch)]
            photo = ((item["B"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
            assert item["label"].shape == (40, 36)
            np.testing.assert_array_equal(PALETTE.to_ids(photo), item["label"].numpy())
            original = np.asarray(Image.open(ds.label_paths[index]))
            flipped.add(not _is_window_of(item["label"].numpy(), original))
    assert flipped == {True, False}  # both flipped and unflipped items occurred


def _is_window_of(window, image):
    h, w = window.shape
    return any(np.array_equal(window, image[top:top + h, left:left + w])
               for top in range(image.shape[0] - h + 1) for left in range(image.shape[1] - w + 1))


def test_resize_keeps_photo_and_label_aligned(tmp_path):
    root = _synthetic_labelmap(tmp_path)
    ds = build_dataset("labelmap", root, "train", palette="facades", load_size=(60, 80), crop_size=56,
                       flip=True)
    item = ds[(1, 3)]
    photo = ((item["B"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    agree = (PALETTE.to_ids(photo) == item["label"].numpy()).mean()
    assert agree > 0.9  # only bicubic-blended block borders may differ
    assert set(item["label"].unique().tolist()) <= set(range(1, 13))


def test_augmentation_is_a_function_of_seed_epoch_index(tmp_path):
    root = _synthetic_labelmap(tmp_path)
    ds = build_dataset("labelmap", root, "train", palette="facades", crop_size=24, flip=True, seed=5)
    again = build_dataset("labelmap", root, "train", palette="facades", crop_size=24, flip=True, seed=5)
    assert torch.equal(ds[(2, 7)]["B"], again[(2, 7)]["B"])
    assert torch.equal(ds[2]["B"], ds[(2, 0)]["B"])
    crops = {ds[(2, epoch)]["label"].numpy().tobytes() for epoch in range(8)}
    assert len(crops) > 1
    # evaluation (not the train split) crops the centre: no randomness at all
    centre = build_dataset("labelmap", root, "train", palette="facades", crop_size=24, random_crop=False)
    assert all(torch.equal(centre[(0, e)]["B"], centre[0]["B"]) for e in range(4))


def test_aligned_halves_share_the_transform(tmp_path):
    (tmp_path / "train").mkdir()
    rng = np.random.default_rng(1)
    half = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([half, half], axis=1)).save(tmp_path / "train" / "x_AB.png")
    ds = build_dataset("aligned", str(tmp_path), "train", load_size=36, crop_size=28, flip=True)
    for epoch in range(4):
        item = ds[(0, epoch)]
        assert item["A"].shape == (3, 28, 28) and torch.equal(item["A"], item["B"])


def test_crop_larger_than_image_is_rejected(tmp_path):
    root = _synthetic_labelmap(tmp_path)
    ds = build_dataset("labelmap", root, "train", palette="facades", crop_size=100)
    with pytest.raises(ValueError, match="crop_size"):
        ds[0]


def test_draw_transform_and_sizes():
    rng = np.random.default_rng(0)
    t = draw_transform((100, 200), (50, 100), (32, 64), random_crop=False, flip=False, rng=rng)
    assert t.crop_box == (9, 18, 32, 64) and not t.flip
    assert as_hw(256, "x") == (256, 256) and as_hw((256, 512), "x") == (256, 512) and as_hw(None, "x") is None
    with pytest.raises(ValueError):
        as_hw((0, 5), "load_size")


def test_instance_edges_marks_both_sides_of_a_boundary():
    inst = np.zeros((4, 6), dtype=np.int32)
    inst[:, 3:] = 1
    edges = instance_edges(inst)
    assert edges[:, 2].all() and edges[:, 3].all() and not edges[:, [0, 1, 4, 5]].any()

"""build_dataset on the real shared datasets and on small synthetic folders of each layout."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from compress.data import build_dataset, guess_mode, holdout_split
from compress.common.palettes import load_palette
from tests.conftest import DATASETS

DATA = DATASETS
FACADES_256 = str(DATA / "facades" / "256")
FACADES = str(DATA / "facades")
CAMVID = str(DATA / "camvid")
SHOES = str(DATA / "edges2shoes_mini")


def test_labelmap_facades_color_input():
    ds = build_dataset("labelmap", FACADES_256, "val", palette="facades", load_size=72, crop_size=64,
                       max_items=3)
    assert len(ds) == 3 and ds.stems == sorted(ds.stems)
    item = ds[1]
    assert item["A"].shape == (3, 64, 64) and item["A"].dtype == torch.float32
    assert item["B"].shape == (3, 64, 64) and -1.0 <= float(item["B"].min()) < float(item["B"].max()) <= 1.0
    assert item["label"].shape == (64, 64) and item["label"].dtype == torch.int64
    assert item["A_path"].endswith(ds.stems[1] + ".png") and item["B_path"].endswith(ds.stems[1] + ".jpg")
    # the colour input is exactly the palette colour of each label id
    lut = torch.from_numpy(load_palette("facades").lut()).float() / 127.5 - 1
    assert torch.equal(item["A"], lut[item["label"]].permute(2, 0, 1))


def test_labelmap_reads_raw_palette_indices_not_colours():
    ds = build_dataset("labelmap", FACADES_256, "train", palette="facades", max_items=1)
    raw = np.asarray(Image.open(ds.label_paths[0]))  # mode "P": the pixel values are the class ids
    assert Image.open(ds.label_paths[0]).mode == "P"
    np.testing.assert_array_equal(ds[0]["label"].numpy(), raw)
    assert set(np.unique(raw)) <= set(range(1, 13))


def test_labelmap_onehot_original_sizes_and_camvid():
    facades = build_dataset("labelmap", FACADES, "val", palette="facades", input_encoding="onehot",
                            load_size=(48, 64), max_items=2)
    item = facades[0]
    assert item["A"].shape == (13, 48, 64)
    assert torch.equal(item["A"].sum(0), torch.ones(48, 64))
    assert torch.equal(item["A"].argmax(0), item["label"])
    camvid = build_dataset("labelmap", CAMVID, "val", palette="camvid", max_items=1)
    item = camvid[0]  # no load/crop size: native 360x480
    assert item["B"].shape == (3, 360, 480) and item["label"].shape == (360, 480)
    assert int(item["label"].max()) <= 11


def test_nearest_resize_keeps_only_valid_ids():
    ds = build_dataset("labelmap", FACADES, "train", palette="facades", load_size=(37, 53), max_items=3)
    for i in range(3):
        original = set(np.unique(np.asarray(Image.open(ds.label_paths[i]))).tolist())
        resized = set(ds[i]["label"].unique().tolist())
        assert resized <= original


def test_labelmap_direction_btoa_photo_to_label():
    ds = build_dataset("labelmap", FACADES_256, "val", palette="facades", direction="BtoA", load_size=32,
                       max_items=1)
    item = ds[0]
    assert item["A_path"].endswith(".jpg") and item["B_path"].endswith(".png")
    lut = torch.from_numpy(load_palette("facades").lut()).float() / 127.5 - 1
    assert torch.equal(item["B"], lut[item["label"]].permute(2, 0, 1))


def test_aligned_edges2shoes_halves_and_direction():
    ab = build_dataset("aligned", SHOES, "val", max_items=2)
    ba = build_dataset("aligned", SHOES, "val", direction="BtoA", max_items=2)
    assert len(ab) == 2
    x, y = ab[0], ba[0]
    assert x["A"].shape == x["B"].shape == (3, 256, 256)
    assert torch.equal(x["A"], y["B"]) and torch.equal(x["B"], y["A"])
    # left half = edges: mostly white background
    assert float((x["A"] > 0.9).float().mean()) > 0.8


def test_single_folder_and_single_label_maps():
    ds = build_dataset("single", SHOES, "demo_sketches", load_size=64)
    assert len(ds) == 2 and ds[0]["A"].shape == (3, 64, 64) and "B" not in ds[0]
    labels = build_dataset("single", FACADES_256, "val", palette="facades", input_encoding="onehot",
                           load_size=32)
    assert len(labels) == 6 and all(p.endswith(".png") for p in labels.paths)  # the photos are not inputs
    item = labels[0]
    assert item["A"].shape == (13, 32, 32) and torch.equal(item["A"].argmax(0), item["label"])


def test_unaligned_from_facades(tmp_path):
    palette = load_palette("facades")
    source = build_dataset("labelmap", FACADES_256, "val", palette="facades", max_items=5)
    for domain in ("trainA", "trainB"):
        (tmp_path / domain).mkdir()
    for i in range(3):  # A: colourised label maps, B: photos (CycleGAN's facades task)
        ids = np.asarray(Image.open(source.label_paths[i]))
        Image.fromarray(palette.colorize(ids)).save(tmp_path / "trainA" / f"{source.stems[i]}.png")
    for i in range(5):
        Image.open(source.photo_paths[i]).save(tmp_path / "trainB" / f"{source.stems[i]}.jpg")
    assert guess_mode(str(tmp_path)) == "unaligned"
    ds = build_dataset("unaligned", str(tmp_path), "train", load_size=32)
    assert len(ds) == 5
    assert ds[3]["A_path"] == ds[0]["A_path"]  # A cycles
    drawn = {ds[(0, epoch)]["B_path"] for epoch in range(12)}
    assert len(drawn) > 1  # B is drawn afresh per epoch
    assert ds[(0, 5)]["B_path"] == ds[(0, 5)]["B_path"]  # ... deterministically
    swapped = build_dataset("unaligned", str(tmp_path), "train", direction="BtoA", load_size=32)
    assert swapped[0]["A_path"].endswith(".jpg")
    with pytest.raises(ValueError, match="valA"):
        build_dataset("unaligned", str(tmp_path), "val")


def _write_cityscapes(root, split="train", city="testcity", n=2, size=(32, 64)):
    height, width = size
    for i in range(n):
        stem = f"{city}_{i:06d}_000019"
        gt = root / "gtFine" / split / city
        photos = root / "leftImg8bit" / split / city
        gt.mkdir(parents=True, exist_ok=True)
        photos.mkdir(parents=True, exist_ok=True)
        label = np.full((height, width), 7, dtype=np.uint8)  # road
        label[:, width // 2:] = 26  # car
        instance = label.astype(np.uint16)  # 16-bit PNG like the real instanceIds
        instance[:, width // 2:3 * width // 4] = 26000  # two car instances side by side
        instance[:, 3 * width // 4:] = 26001
        Image.fromarray(label).save(gt / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instance).save(gt / f"{stem}_gtFine_instanceIds.png")
        photo = np.full((height, width, 3), 40 * i, np.uint8)
        Image.fromarray(photo).save(photos / f"{stem}_leftImg8bit.png")


def test_cityscapes_layout_onehot_with_instance_edges(tmp_path):
    _write_cityscapes(tmp_path)
    assert guess_mode(str(tmp_path)) == "cityscapes"
    ds = build_dataset("cityscapes", str(tmp_path), "train", input_encoding="onehot", instance_edges=True)
    item = ds[0]
    assert len(ds) == 2 and item["A"].shape == (36, 32, 64)  # 35 label ids + 1 edge channel
    assert torch.equal(item["label"][:, :32], torch.full((32, 32), 7))
    assert float(item["A"][7, :, :32].min()) == 1.0 and float(item["A"][26, :, 32:].min()) == 1.0
    edges = item["A"][35]
    # edges on both sides of the road|car border (col 31/32) and of the car|car border (47/48)
    assert set(torch.nonzero(edges.sum(0)).flatten().tolist()) == {31, 32, 47, 48}
    plain = build_dataset("cityscapes", str(tmp_path), "train", input_encoding="onehot", load_size=(16, 32))
    assert plain[1]["A"].shape == (35, 16, 32)


def test_cityscapes_missing_photo_names_file(tmp_path):
    _write_cityscapes(tmp_path)
    os.remove(tmp_path / "leftImg8bit" / "train" / "testcity" / "testcity_000000_000019_leftImg8bit.png")
    with pytest.raises(ValueError, match=r"testcity_000000_000019_gtFine_labelIds\.png has no photo"):
        build_dataset("cityscapes", str(tmp_path), "train")


def test_stems_and_max_items_select():
    all_stems = build_dataset("labelmap", FACADES_256, "val", palette="facades").stems
    assert len(all_stems) == 6  # the fixture's facades val pairs
    chosen = [all_stems[5], all_stems[2]]
    ds = build_dataset("labelmap", FACADES_256, "val", palette="facades", stems=chosen)
    assert ds.stems == sorted(chosen)
    with pytest.raises(ValueError, match="cmp_nope"):
        build_dataset("labelmap", FACADES_256, "val", palette="facades", stems=["cmp_nope"])
    assert len(build_dataset("labelmap", FACADES_256, "val", palette="facades", max_items=4)) == 4


def test_holdout_split_is_deterministic_and_disjoint():
    stems = [f"s{i:03d}" for i in range(50)]
    train, held = holdout_split(stems, 10, seed=3)
    assert (train, held) == holdout_split(list(reversed(stems)), 10, seed=3)
    assert len(held) == 10 and len(train) == 40 and not set(train) & set(held)
    assert sorted(train + held) == stems
    assert holdout_split(stems, 10, seed=4)[1] != held
    with pytest.raises(ValueError, match="n_holdout"):
        holdout_split(stems, 50)

"""The mIoU segmenter network, segment() and its safetensors checkpoint."""
import numpy as np
import pytest
import torch

from compress.metrics.segmenter import (UNetSegmenter, count_params, load_segmenter, save_segmenter, segment,
                                segmenter_metadata)


def test_forward_shapes_and_size_check():
    model = UNetSegmenter(13, width=8)
    assert model.multiple_of == 16
    assert model(torch.randn(2, 3, 32, 48)).shape == (2, 13, 32, 48)
    full = UNetSegmenter(5, width=8, stem_stride=1)
    assert full.multiple_of == 8 and full(torch.randn(1, 3, 24, 16)).shape == (1, 5, 24, 16)
    with pytest.raises(ValueError, match="multiple of 16"):
        model(torch.randn(1, 3, 30, 32))
    assert 480_000 < count_params(UNetSegmenter(13)) < 500_000  # the default: width 16


def test_segment_resizes_or_pads_and_returns_ids():
    model = UNetSegmenter(4, width=8).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(3, 30, 44, 3), dtype=np.uint8)
    padded = segment(model, images, batch_size=2)  # no training resolution: reflect padding
    assert padded.shape == (3, 30, 44) and padded.dtype == np.int64 and padded.max() < 4
    model.resolution = (32, 32)
    resized = segment(model, images)
    assert resized.shape == (3, 30, 44)
    assert segment(model, images[0]).shape == (30, 44)  # a single image
    with pytest.raises(ValueError, match="uint8"):
        segment(model, images.astype(np.float32))


def test_segment_matches_direct_argmax_at_native_size():
    torch.manual_seed(1)
    model = UNetSegmenter(6, width=8).eval()
    images = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        expected = model(x).argmax(1).numpy()
    np.testing.assert_array_equal(segment(model, images), expected)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(2)
    model = UNetSegmenter(13, width=8)
    model(torch.randn(2, 3, 32, 32))  # move BatchNorm running stats away from their defaults
    model.eval()
    path = str(tmp_path / "seg.safetensors")
    save_segmenter(model, path, segmenter_metadata(model, "facades", (64, 64), 0, val_miou=12.5))
    loaded, meta = load_segmenter(path)
    assert meta["palette"] == "facades" and meta["num_classes"] == 13 and meta["resolution"] == [64, 64]
    assert meta["ignore_id"] == 0 and meta["val_miou"] == 12.5 and meta["params"] == count_params(model)
    assert loaded.resolution == (64, 64) and not loaded.training
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(FileExistsError):
        save_segmenter(model, path, meta)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no such segmenter checkpoint"):
        load_segmenter(str(tmp_path / "missing.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.safetensors"):
        load_segmenter(str(junk))
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a segmenter checkpoint"):
        load_segmenter(str(tmp_path / "other.safetensors"))

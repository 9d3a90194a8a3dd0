"""The FID Inception network loads offline and gives deterministic 2048-d features."""
import numpy as np
import pytest
import torch

from compress.data import build_dataset
from compress.metrics import fid_from_features, fid_from_images, inception_features, to_uint8_images
from tests.conftest import DATASETS


@pytest.fixture(scope="module")
def photos():
    ds = build_dataset("labelmap", str(DATASETS / "facades" / "256"), "val", palette="facades",
                       load_size=64, max_items=4)
    return to_uint8_images(torch.stack([ds[i]["B"] for i in range(len(ds))]))


@pytest.fixture(scope="module")
def features(photos):
    return inception_features(photos, batch_size=3)  # loads the network from the installed wheel, offline


def test_features_shape_deterministic_and_batch_invariant(photos, features):
    assert features.shape == (4, 2048) and features.dtype == np.float64
    assert features.min() >= 0 and features.std() > 0  # pool3 of ReLU maps, not constant
    again = inception_features(iter([photos[:1], photos[1:]]), batch_size=4)  # streamed, other batches
    np.testing.assert_allclose(again, features, rtol=0, atol=1e-5)
    assert np.abs(features[0] - features[1]).max() > 1e-3  # different images, different features


def test_identical_image_sets_have_zero_fid_and_noise_raises_it(photos, features):
    assert abs(fid_from_features(features, features)) < 1e-3
    noisy = np.clip(photos.astype(int) + np.random.default_rng(0).integers(-60, 61, photos.shape), 0, 255)
    assert fid_from_images(noisy.astype(np.uint8), features) > 1.0


def test_rejects_float_images(photos):
    with pytest.raises(ValueError, match="to_uint8_images"):
        inception_features(photos.astype(np.float32))


def test_to_uint8_images_rounds_the_generator_range():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)
    out = to_uint8_images(x)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, :, 0].ravel().tolist() == [0, 128, 255, 255]

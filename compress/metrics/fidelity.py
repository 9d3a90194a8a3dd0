"""Teacher fidelity: PSNR between a student's and the teacher's outputs.

A compressed generator should reproduce its teacher; PSNR of student vs teacher output measures
that directly, without a dataset-level metric. Works on uint8 images (range 255) and on
generator tensors/arrays in [-1, 1] (range 2). Batches (4-D) give the mean per-image PSNR.
"""
from typing import Optional

import numpy as np


def _as_array(images) -> np.ndarray:
    if hasattr(images, "detach"):  # torch tensor
        images = images.detach().cpu().numpy()
    return np.asarray(images)


def psnr(a, b, data_range: Optional[float] = None) -> float:
    """PSNR in dB; ``data_range`` defaults to 255 for uint8 inputs and 2.0 otherwise ([-1, 1]).
    4-D inputs are batches: the mean of per-image PSNRs (inf where images are identical)."""
    a, b = _as_array(a), _as_array(b)
    if a.shape != b.shape:
        raise ValueError(f"PSNR needs equal shapes, got {a.shape} and {b.shape}")
    if data_range is None:
        data_range = 255.0 if a.dtype == np.uint8 else 2.0
    a, b = a.astype(np.float64), b.astype(np.float64)
    squared = (a - b) ** 2
    mse = squared.reshape(len(a), -1).mean(axis=1) if a.ndim == 4 else np.array([squared.mean()])
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(data_range ** 2 / mse)
    return float(values.mean())

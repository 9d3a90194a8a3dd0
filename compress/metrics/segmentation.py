"""Confusion matrix and mean IoU, as the official Cityscapes evaluation computes them.

GAN Compression's ``metric/cityscapes_mIoU.py`` (from DRN) accumulates one confusion matrix over
the whole set, takes per-class IoU = TP / (TP + FP + FN) and averages with ``nanmean``, so a
class absent from both the labels and the predictions does not count. The ignored id (void)
is dropped from the targets and left out of the average. Results are in percent, like the paper.
"""
from typing import Optional

import numpy as np


def _as_ids(array, name: str) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got {array.dtype}")
    return array.astype(np.int64)


def confusion_matrix(pred_ids, target_ids, num_classes: int, ignore_id: Optional[int] = None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: rows = target class, columns = predicted class.
    ``pred_ids`` and ``target_ids`` have the same shape ((N, H, W) or (H, W))."""
    pred, target = _as_ids(pred_ids, "pred_ids"), _as_ids(target_ids, "target_ids")
    if pred.shape != target.shape:
        raise ValueError(f"pred_ids {pred.shape} and target_ids {target.shape} must have the same shape")
    valid = np.ones(target.shape, dtype=bool) if ignore_id is None else target != ignore_id
    pred, target = pred[valid], target[valid]
    for array, name in ((pred, "pred_ids"), (target, "target_ids")):
        if array.size and (array.min() < 0 or array.max() >= num_classes):
            raise ValueError(f"{name} has ids outside 0..{num_classes - 1} "
                             f"(min {array.min()}, max {array.max()}); wrong num_classes?")
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(matrix: np.ndarray, ignore_id: Optional[int] = None) -> np.ndarray:
    """Per-class IoU in [0, 1]; NaN for classes absent from targets and predictions (and ignore_id)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positive = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    if ignore_id is not None and 0 <= ignore_id < len(iou):
        iou[ignore_id] = np.nan
    return iou


def miou(pred_ids, target_ids, num_classes: int, ignore_id: Optional[int] = None) -> float:
    """Mean IoU in percent (0..100) over the classes that occur; NaN when none does."""
    iou = iou_per_class(confusion_matrix(pred_ids, target_ids, num_classes, ignore_id), ignore_id)
    if np.all(np.isnan(iou)):
        return float("nan")
    return float(np.nanmean(iou) * 100.0)


def pixel_accuracy(pred_ids, target_ids, num_classes: int, ignore_id: Optional[int] = None) -> float:
    """Share of non-ignored pixels predicted correctly, in percent."""
    matrix = confusion_matrix(pred_ids, target_ids, num_classes, ignore_id)
    return float(np.trace(matrix) / max(matrix.sum(), 1) * 100.0)

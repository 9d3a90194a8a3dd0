"""Confusion matrix and mIoU against hand-computed values."""
import math

import numpy as np
import pytest
import torch

from compress.metrics import confusion_matrix, iou_per_class, miou, pixel_accuracy


def test_confusion_matrix_counts_target_rows_pred_columns():
    target = np.array([[0, 0, 1, 1], [2, 2, 2, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 1]])
    expected = np.array([[1, 1, 0],
                         [0, 3, 0],
                         [1, 0, 2]])
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3), expected)
    # torch tensors work the same
    from_tensors = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 3)
    np.testing.assert_array_equal(from_tensors, expected)


def test_miou_hand_computed():
    target = np.array([[0, 0, 1, 1], [2, 2, 2, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 1]])
    # IoU: class 0: 1/(2+2-1)=1/3, class 1: 3/(3+4-3)=3/4, class 2: 2/(3+2-2)=2/3
    assert miou(pred, target, 3) == pytest.approx(100 * (1 / 3 + 3 / 4 + 2 / 3) / 3)
    assert pixel_accuracy(pred, target, 3) == pytest.approx(100 * 6 / 8)
    assert miou(target, target, 3) == 100.0


def test_ignore_id_and_absent_classes():
    target = np.array([[1, 1, 3, 3]])
    pred = np.array([[1, 1, 1, 2]])
    # id 3 ignored: only the first two pixels count; class 0 absent everywhere -> left out
    iou = iou_per_class(confusion_matrix(pred, target, 4, ignore_id=3), ignore_id=3)
    assert math.isnan(iou[0]) and iou[1] == 1.0 and math.isnan(iou[3])
    assert miou(pred, target, 4, ignore_id=3) == 100.0
    # without ignoring, class 3 is missed entirely and the wrong predictions cost class 1 and 2
    assert miou(pred, target, 4) == pytest.approx(100 * (2 / 3 + 0 + 0) / 3)


def test_batches_accumulate_over_images():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(3, 8, 8))
    pred = np.where(rng.random((3, 8, 8)) < 0.7, target, rng.integers(0, 5, size=(3, 8, 8)))
    total = sum(confusion_matrix(pred[i], target[i], 5) for i in range(3))
    np.testing.assert_array_equal(confusion_matrix(pred, target, 5), total)
    assert 30 < miou(pred, target, 5) < 90


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        miou(np.zeros((2, 2), int), np.zeros((2, 3), int), 2)
    with pytest.raises(ValueError, match="outside 0..1"):
        miou(np.full((2, 2), 5), np.zeros((2, 2), int), 2)
    with pytest.raises(ValueError, match="integer"):
        miou(np.zeros((2, 2)), np.zeros((2, 2), int), 2)

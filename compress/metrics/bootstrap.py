"""Paired bootstrap confidence intervals for comparing generators on a small evaluation split.

With the 38-100 images of the demo's validation splits, a difference of a point or two in mIoU
or a 10 % change in KID can be noise. The question a model card has to answer is "is the student
as good as the teacher on these images?", so the resampling is *paired*: each bootstrap resample
draws item indices with replacement once, and every generator is scored on the same items (its
own outputs for those inputs). Differences and ratios are taken per resample, which cancels the
variation that the split itself causes in both models.

Statistics that work on a resample (an index array into the items):
- `MiouStatistic`: mIoU (percent) from per-image confusion matrices, summed over the resample
  as `compress.metrics.miou` sums over the whole set.
- `KidStatistic`: KID from kernel matrices computed once; within-set sums skip pairs that come
  from the same underlying item (the resampling analogue of the unbiased estimator's diagonal).
  On the identity resample both reproduce the full-set estimates exactly.

Intervals are percentile intervals (``confidence`` 0.9: the 5th and 95th percentiles).
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from compress.metrics.segmentation import confusion_matrix, iou_per_class


def bootstrap_indices(count: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, count) item indices drawn with replacement from a seeded generator."""
    if count < 1 or resamples < 1:
        raise ValueError(f"bootstrap needs at least 1 item and 1 resample, got {count} and {resamples}")
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def percentile_interval(values: np.ndarray, confidence: float) -> Tuple[float, float]:
    """The central ``confidence`` interval of ``values`` (NaNs ignored; NaN if all are NaN)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, np.float64)
    if np.all(np.isnan(values)):
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


class MiouStatistic:
    """mIoU (percent) of a resample, from one confusion matrix per image."""

    def __init__(self, pred_ids: np.ndarray, target_ids: np.ndarray, num_classes: int,
                 ignore_id: Optional[int] = None):
        if len(pred_ids) != len(target_ids):
            raise ValueError(f"{len(pred_ids)} predictions for {len(target_ids)} label maps")
        self.ignore_id = ignore_id
        self.per_image = np.stack([confusion_matrix(p, t, num_classes, ignore_id)
                                   for p, t in zip(pred_ids, target_ids)])

    def __call__(self, indices: np.ndarray) -> float:
        iou = iou_per_class(self.per_image[indices].sum(axis=0), self.ignore_id)
        return float("nan") if np.all(np.isnan(iou)) else float(np.nanmean(iou) * 100.0)


class KidStatistic:
    """KID (polynomial kernel (x.y/d + 1)^3, as `kid_from_features`) of a resample of paired
    (fake, real) feature rows."""

    def __init__(self, fake_features: np.ndarray, real_features: np.ndarray):
        fake, real = np.asarray(fake_features, np.float64), np.asarray(real_features, np.float64)
        if fake.shape != real.shape or fake.ndim != 2:
            raise ValueError(f"paired KID needs (N, D) fake and real features of one shape, got "
                             f"{fake.shape} and {real.shape}")
        dim = fake.shape[1]
        self.k_xx = (fake @ fake.T / dim + 1) ** 3
        self.k_yy = (real @ real.T / dim + 1) ** 3
        self.k_xy = (fake @ real.T / dim + 1) ** 3

    def __call__(self, indices: np.ndarray) -> float:
        distinct = indices[:, None] != indices[None, :]  # pairs of two different items
        pairs = distinct.sum()
        if pairs == 0:
            return float("nan")
        within = (self.k_xx[np.ix_(indices, indices)][distinct].sum()
                  + self.k_yy[np.ix_(indices, indices)][distinct].sum()) / pairs
        return float(within - 2.0 * self.k_xy[np.ix_(indices, indices)].mean())


def paired_bootstrap(statistics: Dict[str, object], count: int, reference: str, resamples: int = 1000,
                     seed: int = 0, confidence: float = 0.9,
                     ratio_keys: Sequence[str] = ("kid",)) -> Dict[str, Dict[str, object]]:
    """Intervals for every generator and its paired comparison with ``reference``.

    ``statistics[name][metric]`` is a callable of an index array (e.g. `MiouStatistic`).
    Returns ``{name: {"<metric>_interval": [lo, hi], "<metric>_diff": d, "<metric>_diff_interval":
    [lo, hi]}}`` (for ``ratio_keys``: ``_ratio`` instead of ``_diff``), the comparisons only for
    names other than ``reference``. Every generator sees the same resamples."""
    if reference not in statistics:
        raise ValueError(f"reference {reference!r} is not among the scored generators {sorted(statistics)}")
    draws = bootstrap_indices(count, resamples, seed)
    identity = np.arange(count)
    values: Dict[str, Dict[str, np.ndarray]] = {}
    points: Dict[str, Dict[str, float]] = {}
    for name, by_metric in statistics.items():
        values[name] = {m: np.array([stat(d) for d in draws]) for m, stat in by_metric.items()}
        points[name] = {m: stat(identity) for m, stat in by_metric.items()}
    out: Dict[str, Dict[str, object]] = {}
    for name, by_metric in values.items():
        row: Dict[str, object] = {}
        for metric, samples in by_metric.items():
            row[f"{metric}_interval"] = list(percentile_interval(samples, confidence))
            base = values[reference].get(metric)
            if name == reference or base is None:
                continue
            if metric in ratio_keys:
                with np.errstate(divide="ignore", invalid="ignore"):
                    paired = np.where(base > 0, samples / base, np.nan)
                    point = points[name][metric] / points[reference][metric]
                row[f"{metric}_ratio"] = float(point)
                row[f"{metric}_ratio_interval"] = list(percentile_interval(paired, confidence))
            else:
                row[f"{metric}_diff"] = points[name][metric] - points[reference][metric]
                row[f"{metric}_diff_interval"] = list(percentile_interval(samples - base, confidence))
        out[name] = row
    return out

"""Paired bootstrap intervals (compress.metrics.bootstrap): exact on the identity resample,
seeded, wide for few items and narrow for many, paired comparisons that cancel shared noise."""
import numpy as np
import pytest

from compress.metrics import kid_from_features, miou
from compress.metrics.bootstrap import (KidStatistic, MiouStatistic, bootstrap_indices, paired_bootstrap,
                                        percentile_interval)


def _labels(rng, count, classes=4, size=8):
    return rng.integers(0, classes, size=(count, size, size))


def _noisy(rng, labels, error_rate, classes=4):
    flip = rng.random(labels.shape) < error_rate
    return np.where(flip, rng.integers(0, classes, size=labels.shape), labels)


def test_identity_resample_reproduces_the_full_set_metrics():
    rng = np.random.default_rng(0)
    labels = _labels(rng, 12)
    predicted = _noisy(rng, labels, 0.3)
    everything = np.arange(12)
    assert MiouStatistic(predicted, labels, 4)(everything) == pytest.approx(miou(predicted, labels, 4))
    fake, real = rng.normal(size=(12, 16)), rng.normal(0.5, 1.0, size=(12, 16))
    kid, _ = kid_from_features(fake, real, subsets=3)
    assert KidStatistic(fake, real)(everything) == pytest.approx(kid, rel=1e-12)


def test_indices_are_seeded_and_in_range():
    a, b = bootstrap_indices(10, 50, seed=3), bootstrap_indices(10, 50, seed=3)
    assert np.array_equal(a, b) and a.shape == (50, 10) and a.min() >= 0 and a.max() < 10
    assert not np.array_equal(a, bootstrap_indices(10, 50, seed=4))


def _two_models(count, seed=0):
    rng = np.random.default_rng(seed)
    labels = _labels(rng, count)
    good, worse = _noisy(rng, labels, 0.2), _noisy(rng, labels, 0.35)
    feats_real = rng.normal(size=(count, 8))
    feats_good = rng.normal(0.7, 1.0, size=(count, 8))   # clearly off the real distribution...
    feats_worse = rng.normal(1.4, 1.0, size=(count, 8))  # ...and the student further still
    return {"teacher": {"miou": MiouStatistic(good, labels, 4), "kid": KidStatistic(feats_good, feats_real)},
            "student": {"miou": MiouStatistic(worse, labels, 4),
                        "kid": KidStatistic(feats_worse, feats_real)}}


def test_intervals_contain_the_point_estimate_and_are_deterministic():
    stats = _two_models(30)
    first = paired_bootstrap(stats, 30, "teacher", resamples=300, seed=1)
    again = paired_bootstrap(stats, 30, "teacher", resamples=300, seed=1)
    assert first == again
    student = first["student"]
    low, high = student["miou_diff_interval"]
    assert low <= student["miou_diff"] <= high and high < 0  # clearly worse: the interval excludes 0
    low, high = student["kid_ratio_interval"]
    assert low <= student["kid_ratio"] <= high and low > 1
    for name in ("teacher", "student"):
        point = stats[name]["miou"](np.arange(30))
        low, high = first[name]["miou_interval"]
        assert low <= point <= high
    assert "miou_diff" not in first["teacher"]  # the baseline is not compared with itself


def test_few_items_give_wide_intervals_and_many_give_narrow_ones():
    def width(count):
        low, high = paired_bootstrap(_two_models(count, seed=5), count, "teacher", resamples=300,
                                     seed=0)["student"]["miou_diff_interval"]
        return high - low
    assert width(2) > 3 * width(200)


def test_pairing_cancels_the_noise_both_models_share():
    """Two models whose per-item scores move together: the difference is tight although each
    model's own interval is wide."""
    rng = np.random.default_rng(2)
    labels = _labels(rng, 40)
    hard = rng.random(40)  # per-image difficulty shared by both models
    base = np.stack([_noisy(rng, labels[i:i + 1], 0.05 + 0.6 * hard[i])[0] for i in range(40)])
    stats = {"a": {"miou": MiouStatistic(base, labels, 4)},
             "b": {"miou": MiouStatistic(base.copy(), labels, 4)}}
    out = paired_bootstrap(stats, 40, "a", resamples=200, seed=0)
    assert out["b"]["miou_diff_interval"] == [0.0, 0.0]
    low, high = out["a"]["miou_interval"]
    assert high - low > 2.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(np.arange(5.0), 1.5)
    with pytest.raises(ValueError, match="reference"):
        paired_bootstrap(_two_models(5), 5, "nobody", resamples=10)
    with pytest.raises(ValueError, match="same shape|one shape"):
        KidStatistic(np.zeros((3, 4)), np.zeros((4, 4)))

"""Fréchet distance, KID and the real-statistics cache, on synthetic features."""
import os

import numpy as np
import pytest

import compress.metrics.fid as fid_module
from compress.metrics import (feature_statistics, fid_from_features, frechet_distance,
                              frechet_distance_from_features, kid_from_features, real_statistics, stats_key)


def _reference_fid(mu1, s1, mu2, s2):
    """Independent float64 reference: trace of sqrt(S1 S2) from the general (non-symmetric)
    eigenvalues of the product, as in the FID paper's definition."""
    eigenvalues = np.linalg.eigvals(s1 @ s2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


def _random_covariance(rng, dim, rank=None):
    factor = rng.normal(size=(dim, rank or dim))
    return factor @ factor.T / dim


def test_frechet_matches_reference_on_random_gaussians():
    rng = np.random.default_rng(0)
    for dim in (3, 16, 64):
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        s1, s2 = _random_covariance(rng, dim), _random_covariance(rng, dim)
        ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(_reference_fid(mu1, s1, mu2, s2), rel=1e-8, abs=1e-9)
        assert ours > 0


def test_frechet_closed_forms():
    # diagonal covariances: sum (mu1-mu2)^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 1 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-12)
    # identical statistics: zero up to round-off, also when the covariance is singular
    # (fewer samples than dims, as with 2048-d features of a small validation set)
    rng = np.random.default_rng(1)
    singular = _random_covariance(rng, 40, rank=5)
    assert abs(frechet_distance(np.zeros(40), singular, np.zeros(40), singular)) < 1e-5 * np.trace(singular)


def test_fid_from_features_with_features_or_stats():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 8))
    fake = rng.normal(loc=0.5, size=(300, 8))
    mu, sigma = feature_statistics(real)
    stats = {"mu": mu, "sigma": sigma}
    from_stats = fid_from_features(fake, stats)
    assert from_stats == pytest.approx(fid_from_features(fake, real), rel=1e-12)
    assert "sigma_sqrt" in stats and fid_from_features(fake, stats) == pytest.approx(from_stats, rel=1e-12)
    np.testing.assert_allclose(stats["sigma_sqrt"] @ stats["sigma_sqrt"], sigma, atol=1e-12)
    mu_f, sigma_f = feature_statistics(fake)
    assert from_stats == pytest.approx(_reference_fid(mu_f, sigma_f, mu, sigma), rel=1e-8)
    assert 1.5 < from_stats < 3.5  # dominated by the mean shift: 8 dims x 0.5^2 = 2
    assert abs(fid_from_features(real, real)) < 1e-9
    with pytest.raises(ValueError, match="N >= 2"):
        fid_from_features(real[:1], real)


def test_feature_space_formula_matches_covariance_formula_when_n_below_d():
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(30, 64)), rng.normal(loc=0.2, scale=1.3, size=(20, 64))
    mu_r, s_r = feature_statistics(real)
    mu_f, s_f = feature_statistics(fake)
    # rank-deficient covariances: the D x D formulas carry ~1e-8 relative round-off (square roots
    # of eigenvalues that should be 0); the feature-space formula has none
    expected = _reference_fid(mu_f, s_f, mu_r, s_r)
    exact = frechet_distance_from_features(fake, real)
    assert exact == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu_f, s_f, mu_r, s_r) == pytest.approx(expected, rel=1e-6)
    # fid_from_features takes the feature path for arrays and for stats carrying features
    assert fid_from_features(fake, real) == exact
    assert fid_from_features(fake, {"mu": mu_r, "sigma": s_r, "features": real}) == exact
    assert abs(frechet_distance_from_features(real, real)) < 1e-10  # exact zero, no round-off roots


def test_kid_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(500, 32)), rng.normal(size=(500, 32))
    shifted = rng.normal(loc=1.0, size=(500, 32))
    same_mean, same_std = kid_from_features(a, b, subsets=20, subset_size=200)
    diff_mean, _ = kid_from_features(a, shifted, subsets=20, subset_size=200)
    assert abs(same_mean) < 3 * same_std + 0.02
    assert diff_mean > 0.5 and diff_mean > 20 * abs(same_mean)
    assert kid_from_features(a, shifted, subsets=5, subset_size=100, seed=1) == \
        kid_from_features(a, shifted, subsets=5, subset_size=100, seed=1)


def test_kid_matches_explicit_unbiased_estimator_on_one_subset():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6, 4)), rng.normal(loc=0.3, size=(6, 4))
    k = lambda p, q: (p @ q.T / 4 + 1) ** 3  # noqa: E731
    m = 6
    expected = ((k(x, x).sum() - np.trace(k(x, x))) / (m * (m - 1))
                + (k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1)) - 2 * k(x, y).mean())
    mean, std = kid_from_features(x, y, subsets=3, subset_size=6)  # the whole sets, only permuted
    assert mean == pytest.approx(expected, rel=1e-10) and std == pytest.approx(0, abs=1e-10)


def test_real_statistics_cache(tmp_path, monkeypatch):
    calls = []

    def fake_features(images, batch_size=50, device="cpu", progress=False):
        calls.append(len(images))
        flat = images.reshape(len(images), -1).astype(np.float64)  # 12 values per image
        return np.tile(flat, (1, 2048 // 12 + 1))[:, :2048]

    monkeypatch.setattr(fid_module, "inception_features", fake_features)
    images = np.random.default_rng(5).integers(0, 256, size=(5, 2, 2, 3), dtype=np.uint8)
    key = stats_key("facades", "val", (256, 256))
    assert key == "facades_val_256x256"
    first = real_statistics(lambda: images, key, cache_dir=str(tmp_path))
    assert os.path.isfile(tmp_path / f"{key}.npz") and calls == [5]
    second = real_statistics(lambda: pytest.fail("a cache hit must not load images"), key,
                             cache_dir=str(tmp_path))
    np.testing.assert_array_equal(first["mu"], second["mu"])
    np.testing.assert_array_equal(first["sigma"], second["sigma"])
    assert second["features"].shape == (5, 2048)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]  # atomic write left no temp file
    with np.load(tmp_path / f"{key}.npz") as data:
        assert str(data["key"]) == key and int(data["count"]) == 5
    with pytest.raises(ValueError, match="cache_key"):
        real_statistics(images, "../escape", cache_dir=str(tmp_path))

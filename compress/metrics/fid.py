"""FID and KID from Inception features, and cached real-image statistics.

FID (Heusel et al. 2017): ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), in float64. The trace
of the matrix square root is sum(sqrt(eig(S2^1/2 S1 S2^1/2))): that symmetric product has the
same eigenvalues as S1 S2, and ``eigvalsh`` on it is fast and stable even when the covariances
are singular (fewer images than 2048 features), where ``scipy.linalg.sqrtm`` of the
non-symmetric S1 S2 is slower and can return complex noise. Round-off eigenvalues near 0 leave
an absolute error of about 1e-4 on 2048-d FIDs. The real side's root S2^1/2 is computed once
and kept in its statistics dict ("sigma_sqrt"), so scoring many candidates (the architecture
search) costs one ``eigvalsh`` each. When both sides have fewer images than feature dimensions
(small validation sets) and their features are at hand, an exact N1 x N2 formula replaces the
D x D algebra (``frechet_distance_from_features``).

KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets (mean, std), as in clean-fid/torchmetrics.

Real statistics are cached as ``<cache_dir>/<cache_key>.npz`` (mu, sigma, features as float32,
plus the key, image count and extractor id); ``stats_key(dataset, split, resolution)`` makes keys.
"""
import os
import re
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from compress.metrics.inception import EXTRACTOR_ID, FEATURE_DIM, Images, inception_features

CACHE_ENV = "GAN_COMPRESSION_STATS_DIR"
RealStats = Dict[str, np.ndarray]


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof 1, float64) of (N, D) features; N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, D) features for a covariance, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     sqrt_sigma2: Optional[np.ndarray] = None) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).
    ``sqrt_sigma2``: sigma2's PSD square root, if already known (saves one eigendecomposition)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    root2 = _psd_sqrt(sigma2) if sqrt_sigma2 is None else np.asarray(sqrt_sigma2, np.float64)
    product = root2 @ sigma1 @ root2
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def _as_stats(real: Union[RealStats, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(real, dict):
        if "mu" not in real or "sigma" not in real:
            raise ValueError(f"real statistics need 'mu' and 'sigma', got keys {sorted(real)}")
        return np.asarray(real["mu"], np.float64), np.asarray(real["sigma"], np.float64)
    return feature_statistics(real)


def frechet_distance_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """The Fréchet distance of two feature sets (N1, D), (N2, D) via their N1 x N2 cross product.

    With centred A_i = (F_i - mean) / sqrt(N_i - 1), S_i = A_i^T A_i and the eigenvalues of
    S1 S2 are the squared singular values of A1 A2^T, so tr (S1 S2)^1/2 = ||A1 A2^T||_* and
    tr S_i = ||A_i||_F^2. Exact and much cheaper than D x D algebra when N1, N2 < D.
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f"need (N >= 2, D) feature sets with the same D, got {f1.shape} and {f2.shape}")
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a1, a2 = (f1 - mu1) / np.sqrt(len(f1) - 1), (f2 - mu2) / np.sqrt(len(f2) - 1)
    nuclear = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * nuclear)


def fid_from_features(fake_feats: np.ndarray, real_stats_or_feats: Union[RealStats, np.ndarray]) -> float:
    """FID of fake features (N, D) against real statistics {mu, sigma[, features]} or real
    features (M, D). When both feature sets are known and smaller than D, the exact
    feature-space formula is used (``frechet_distance_from_features``); otherwise the
    covariance one, and a statistics dict gets sigma's square root cached as "sigma_sqrt"."""
    fake_feats = np.asarray(fake_feats, np.float64)
    real_feats = real_stats_or_feats.get("features") if isinstance(real_stats_or_feats, dict) \
        else real_stats_or_feats
    if real_feats is not None and fake_feats.ndim == 2 and np.ndim(real_feats) == 2 \
            and max(len(fake_feats), len(real_feats)) < fake_feats.shape[1]:
        return frechet_distance_from_features(fake_feats, real_feats)
    mu_fake, sigma_fake = feature_statistics(fake_feats)
    mu_real, sigma_real = _as_stats(real_stats_or_feats)
    root = None
    if isinstance(real_stats_or_feats, dict):
        root = real_stats_or_feats.get("sigma_sqrt")
        if root is None or np.shape(root) != sigma_real.shape:
            root = real_stats_or_feats["sigma_sqrt"] = _psd_sqrt(sigma_real)
    return frechet_distance(mu_fake, sigma_fake, mu_real, sigma_real, sqrt_sigma2=root)


def fid_from_images(fake_uint8: Images, real_stats: Union[RealStats, np.ndarray], batch_size: int = 50,
                    device: str = "cpu", progress: bool = False) -> float:
    """FID of uint8 images (N, H, W, 3) against real statistics (see ``real_statistics``)."""
    return fid_from_features(inception_features(fake_uint8, batch_size, device, progress), real_stats)


def kid_from_features(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> Tuple[float, float]:
    """KID (mean, std over ``subsets``) between feature sets (N1, D) and (N2, D).
    ``subset_size`` is capped at min(N1, N2); values near 0 mean matching distributions."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs (N, D) feature sets with the same D, got {f1.shape} and {f2.shape}")
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(f1)} and {len(f2)}")
    dim = f1.shape[1]
    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for i in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        k_xx = (x @ x.T / dim + 1) ** 3
        k_yy = (y @ y.T / dim + 1) ** 3
        k_xy = (x @ y.T / dim + 1) ** 3
        off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[i] = off_diagonal - 2 * k_xy.mean()
    return float(estimates.mean()), float(estimates.std())


# ----------------------------------------------------------------------------- cached real statistics

def stats_key(dataset: str, split: str, resolution: Sequence[int]) -> str:
    """Cache key such as ``facades_val_256x256`` (resolution is (height, width))."""
    return f"{dataset}_{split}_{int(resolution[0])}x{int(resolution[1])}"


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "gan-compression",
                                                     "real_stats")


def _cache_path(cache_key: str, cache_dir: Optional[str]) -> str:
    if not cache_key or not re.fullmatch(r"[A-Za-z0-9._+-]+", cache_key):
        raise ValueError(f"cache_key {cache_key!r} must be a non-empty file-name-safe string "
                         "(letters, digits, . _ + -); see stats_key()")
    return os.path.join(cache_dir or default_cache_dir(), cache_key + ".npz")


def load_statistics(path: str) -> RealStats:
    """Read a statistics .npz (ours, or the official ``real_stat/*.npz`` with mu and sigma only)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable statistics .npz ({error}); "
                         "delete it to recompute") from None
    if "mu" not in stats or "sigma" not in stats or stats["mu"].shape != (FEATURE_DIM,):
        raise ValueError(f"{path}: expected 'mu' ({FEATURE_DIM},) and 'sigma'; delete it to recompute")
    return stats


def real_statistics(images_uint8_or_callable: Union[Images, Callable[[], Images]], cache_key: str,
                    cache_dir: Optional[str] = None, batch_size: int = 50, device: str = "cpu",
                    progress: bool = False) -> RealStats:
    """Statistics {mu, sigma, features} of real images, cached under ``cache_key``.

    Pass the images (uint8 (N, H, W, 3) array or an iterable of batches) or a callable returning
    them: the callable is only called on a cache miss. A cache written by another feature
    extractor version or for another key is recomputed. Writes are atomic.
    """
    from compress.common.atomic import atomic_write
    path = _cache_path(cache_key, cache_dir)
    if os.path.isfile(path):
        stats = load_statistics(path)
        if str(stats.get("extractor", "")) == EXTRACTOR_ID and str(stats.get("key", "")) == cache_key:
            return {"mu": stats["mu"], "sigma": stats["sigma"],
                    "features": stats["features"].astype(np.float64)}
    images = images_uint8_or_callable() if callable(images_uint8_or_callable) else images_uint8_or_callable
    features = inception_features(images, batch_size=batch_size, device=device, progress=progress)
    mu, sigma = feature_statistics(features)

    def write(temp: str) -> None:
        with open(temp, "wb") as handle:
            np.savez(handle, mu=mu, sigma=sigma, features=features.astype(np.float32),
                     key=np.array(cache_key), count=np.array(len(features)), extractor=np.array(EXTRACTOR_ID))

    atomic_write(path, write, overwrite=True)
    return {"mu": mu, "sigma": sigma, "features": features}

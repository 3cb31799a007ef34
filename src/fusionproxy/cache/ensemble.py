"""Teacher-ensemble statistics of one training item (paper Sec. 3.2, Eq. 4-6) and their training-set
aggregates (Sec. 3.3: the per-channel std sigma_k and Eq. 8's denominator E_x'[v̄_k(x')]).

Variances over samples are the unbiased sample variance (divisor 2N - 1; 0 for a single sample). Feature
statistics are computed on the RAW backbone features (before division by sigma_k), because sigma_k is only
known once the whole training set is cached; Eq. 9's normalised mean is then exactly raw mean / sigma_k at load time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def image_statistics(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """S x 3 x H x W teacher samples -> (Eq. 4 mean, 3 x H x W; Eq. 5 variance averaged over RGB, H x W)."""
    samples = samples.double()
    return samples.mean(dim=0).float(), samples.var(dim=0, correction=_correction(len(samples))).mean(dim=0).float()


def _correction(count: int) -> int:
    """Bessel's correction, except for a single sample (Table 4 row (a), N = 1): it has no spread, so its
    variance is 0 (not NaN), which makes Eq. 7's pixel weights and Eq. 8's routing uniform."""
    return 1 if count > 1 else 0


@dataclass
class FeatureStatistics:
    """One backbone's statistics of one item's sample features (S x C x h x w, raw)."""

    mean: torch.Tensor  # C x h x w, mean over samples (Eq. 9 before / sigma_k)
    var: torch.Tensor  # h x w, Eq. 6: variance over samples, averaged over channels
    channel_sum: np.ndarray  # C, float64: sum over samples and positions (for sigma_k)
    channel_sumsq: np.ndarray  # C, float64: sum of squares over samples and positions
    count: int  # values per channel summed: S * h * w
    var_spatial_mean: float  # v̄_k(x) of Eq. 8


def feature_statistics(features: torch.Tensor) -> FeatureStatistics:
    """S x C x h x w raw features of the S teacher samples of one item -> its statistics."""
    features = features.double()
    samples, channels, height, width = features.shape
    var = features.var(dim=0, correction=_correction(samples)).mean(dim=0)
    flat = features.permute(1, 0, 2, 3).reshape(channels, -1)
    return FeatureStatistics(
        mean=features.mean(dim=0).float(),
        var=var.float(),
        channel_sum=flat.sum(dim=1).cpu().numpy(),
        channel_sumsq=(flat * flat).sum(dim=1).cpu().numpy(),
        count=samples * height * width,
        var_spatial_mean=float(var.mean()),
    )


def channel_sigma(channel_sum: np.ndarray, channel_sumsq: np.ndarray, count: int) -> np.ndarray:
    """Per-channel training-set standard deviation sigma_k (Sec. 3.3) from per-item sums (M x C) over
    `count` values per item and channel: the population std of every sample feature of every item.

    A channel that is constant over the whole training set (a dead ReLU) gets sigma 1 rather than 0, so that
    dividing by sigma_k leaves it unchanged instead of producing inf."""
    total = float(count) * channel_sum.shape[0]
    mean = channel_sum.sum(axis=0) / total
    variance = np.maximum(channel_sumsq.sum(axis=0) / total - mean * mean, 0.0)
    sigma = np.sqrt(variance)
    return np.where(sigma > 0.0, sigma, 1.0)


def mean_spatial_variance(var_spatial_means: np.ndarray) -> float:
    """E_x'[v̄_k(x')] of Eq. 8: the training-set mean of the per-item spatial mean of v_k."""
    return float(np.mean(var_spatial_means))

"""The `cddfuse` convention: the evaluator behind the CDDFuse (CVPR 2023) and DTPF tables.

Every image is first converted to gray as that evaluator reads it (OpenCV BGR->gray on float32, i.e.
0.299 R + 0.587 G + 0.114 B, rounded) and then scored once. Arithmetic follows the reference's float32
where it could change a result (the gray conversion and SSIM); everything else is float64, which moves no
value by more than float32 rounding. The functions take the three gray images as float32 arrays:
`fused`, `ir` (source A), `vis` (source B).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from ._matlab import separable_correlate
from .common import cached_by_content, cached_by_identity, entropy_bits, qabf

NAMES = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "PSNR"]
LOWER_IS_BETTER: set[str] = set()


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (or gray) -> rounded float32 gray exactly as `cv2.cvtColor(BGR float32, BGR2GRAY)`."""
    if image.ndim == 2:
        return image.astype(np.float32)
    bgr = np.ascontiguousarray(image[..., 2::-1]).astype(np.float32)
    return np.round(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def stretch_to_uint8(image: np.ndarray) -> np.ndarray:
    """CDDFuse's per-image min-max stretch: (x - min) / (max - min) * 255 over all channels, stored as
    uint8 the way its PNG writer does (floor(v + 0.499999999)). A flat image becomes all zeros."""
    values = np.asarray(image, dtype=np.float64)
    lo, hi = values.min(), values.max()
    if hi == lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.floor((values - lo) / (hi - lo) * 255.0 + 0.499999999).astype(np.uint8)


def en(fused: np.ndarray) -> float:
    """EN = -sum_k p_k log2 p_k over the histogram of the rounded gray levels."""
    counts = np.bincount(np.round(fused).astype(np.uint8).ravel())
    return entropy_bits(counts / fused.size)


def sd(fused: np.ndarray) -> float:
    """SD = sqrt(mean (F - mean F)^2), the population standard deviation."""
    return float(np.std(fused.astype(np.float64)))


def sf(fused: np.ndarray) -> float:
    """SF = sqrt(mean (F_i,j - F_i,j-1)^2 + mean (F_i,j - F_i-1,j)^2), each mean over its own difference count."""
    f = fused.astype(np.float64)
    return float(np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2)))


def ag(fused: np.ndarray) -> float:
    """AG = mean sqrt((Gx^2 + Gy^2) / 2), central differences inside, one-sided at the borders."""
    gy, gx = np.gradient(fused.astype(np.float64))
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


def _codes(values: np.ndarray) -> np.ndarray:
    """Dense integer labels of the distinct values (the gray levels themselves when they are 0..255 integers)."""
    flat = values.ravel()
    if np.all((flat >= 0) & (flat <= 255) & (flat == np.round(flat))):
        return flat.astype(np.int64)
    return np.unique(flat, return_inverse=True)[1].ravel()


def _mutual_info_nats(a: np.ndarray, b: np.ndarray) -> float:
    """sklearn `mutual_info_score(a, b)`: sum p_ij ln(p_ij / (p_i p_j)) over the distinct values of a and b
    (empty labels contribute nothing, so integer gray levels can serve as labels directly)."""
    ia, ib = _codes(a), _codes(b)
    na, nb = int(ia.max()) + 1, int(ib.max()) + 1
    joint = np.bincount(ia * nb + ib, minlength=na * nb).astype(np.float64).reshape(na, nb)
    total = joint.sum()
    pa, pb = joint.sum(axis=1) / total, joint.sum(axis=0) / total
    rows, cols = np.nonzero(joint)
    p = joint[rows, cols] / total
    return max(float((p * np.log(p / (pa[rows] * pb[cols]))).sum()), 0.0)


def mi(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """MI = MI(F, IR) + MI(F, VIS), natural logarithm, over the distinct gray values (no fixed binning)."""
    return _mutual_info_nats(fused, ir) + _mutual_info_nats(fused, vis)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r = sum (x - mx)(y - my) / sqrt(sum (x - mx)^2 sum (y - my)^2)."""
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum()))


def scd(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """SCD = r(IR, F - VIS) + r(VIS, F - IR) (Aslantas & Bendes 2015, sum of correlations of differences)."""
    f, a, b = (x.astype(np.float64) for x in (fused, ir, vis))
    return _correlation(a, f - b) + _correlation(b, f - a)


def cc(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """CC = (r(IR, F) + r(VIS, F)) / 2."""
    f, a, b = (x.astype(np.float64) for x in (fused, ir, vis))
    return (_correlation(a, f) + _correlation(b, f)) / 2.0


def psnr(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """PSNR = 10 log10(max(F)^2 / MSE), MSE = (mean (IR - F)^2 + mean (VIS - F)^2) / 2. The peak is the
    fused image's own maximum, not 255."""
    f, a, b = (x.astype(np.float64) for x in (fused, ir, vis))
    mse = (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2.0
    return float(10.0 * np.log10(f.max() ** 2 / mse))


def qabf_metric(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """Q^{AB/F} (Xydeas & Petrovic) with A = IR, B = VIS on the gray images."""
    return qabf(ir, vis, fused)


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image 0.19 `structural_similarity(x, y)` for float32 input with default arguments.

    7 x 7 uniform window (`uniform_filter`, reflect borders), sample covariance (x 49/48),
    data_range = 2 (the float dtype range -1..1 it assumes), C1 = (0.01 * 2)^2, C2 = (0.03 * 2)^2,
    computed in float32; the mean skips a 3-pixel border.
    """
    c1, c2 = np.float32((0.01 * 2) ** 2), np.float32((0.03 * 2) ** 2)
    cov_norm = np.float32(49.0 / 48.0)

    def blur(v: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(v, size=7)

    ux, uy = blur(x), blur(y)
    vx = cov_norm * (blur(x * x) - ux * ux)
    vy = cov_norm * (blur(y * y) - uy * uy)
    vxy = cov_norm * (blur(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s[3:-3, 3:-3].mean(dtype=np.float64))


def ssim(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """SSIM = SSIM(F, IR) + SSIM(F, VIS) (a sum, best value 2)."""
    return _ssim(fused, ir) + _ssim(fused, vis)


def _vif_window(scale: int) -> np.ndarray:
    """1-D factor of the scale's Gaussian window: N = 2^(5 - scale) + 1 taps, sd = N / 5, normalised."""
    n = 2 ** (4 - scale + 1) + 1
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * (n / 5.0) ** 2))
    return g / g.sum()


def _valid(image: np.ndarray, column: np.ndarray) -> np.ndarray:
    """'valid' correlation with outer(column, column)."""
    half = len(column) // 2
    return separable_correlate(image, column)[half:-half, half:-half]


def _vif_levels(image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per scale s = 1..4: (image at that scale, local mean mu, local variance sigma^2 >= 0). Between scales
    the image is blurred with the previous scale's window ('valid') and decimated by 2."""
    current = image.astype(np.float64)
    levels = []
    for scale in range(1, 5):
        window = _vif_window(scale)
        if scale > 1:
            current = _valid(current, window)[::2, ::2]
        mu = _valid(current, window)
        levels.append((current, mu, np.maximum(_valid(current * current, window) - mu * mu, 0.0)))
    return levels


_source_vif_levels = cached_by_identity()(_vif_levels)


def _vif(reference: list, distorted: list) -> float:
    """Pixel-domain multi-scale VIF (Sheikh & Bovik 2006), 4 scales, sigma_n^2 = 2:

    VIF = sum_s sum log10(1 + g^2 s_r^2 / (s_v^2 + sigma_n^2)) / sum_s sum log10(1 + s_r^2 / sigma_n^2),
    with local Gaussian-weighted statistics, gain g = s_rd / s_r^2, s_v^2 = s_d^2 - g s_rd, and the
    reference's clamps (negative gains -> 0, tiny variances -> eps). Returns 1 where the ratio is
    undefined (0/0), as the reference does.
    """
    eps = 1e-10
    sigma_nsq = 2.0
    num = den = 0.0
    for scale, ((ref, mu1, sigma1_sq), (dist, mu2, sigma2_sq)) in enumerate(zip(reference, distorted), 1):
        sigma12 = _valid(ref * dist, _vif_window(scale)) - mu1 * mu2
        sigma1_sq = sigma1_sq.copy()
        g = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - g * sigma12
        flat_ref = sigma1_sq < eps
        g[flat_ref] = 0
        sv_sq[flat_ref] = sigma2_sq[flat_ref]
        sigma1_sq[flat_ref] = 0
        flat_dist = sigma2_sq < eps
        g[flat_dist] = 0
        sv_sq[flat_dist] = 0
        negative = g < 0
        sv_sq[negative] = sigma2_sq[negative]
        g[negative] = 0
        sv_sq[sv_sq <= eps] = eps

        num += float(np.log10(1 + g * g * sigma1_sq / (sv_sq + sigma_nsq)).sum())
        den += float(np.log10(1 + sigma1_sq / sigma_nsq).sum())
    return 1.0 if den == 0 else num / den


def vif_pair(reference: np.ndarray, distorted: np.ndarray) -> float:
    """VIF of `distorted` against `reference` (see `_vif`)."""
    return _vif(_vif_levels(reference), _vif_levels(distorted))


def vif(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """VIF = VIF(IR -> F) + VIF(VIS -> F)."""
    fused_levels = _vif_levels(fused)
    return _vif(_source_vif_levels(ir), fused_levels) + _vif(_source_vif_levels(vis), fused_levels)


@cached_by_content()
def _source_grays(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sources' gray images, one frozen object per content, so their derived maps are computed once."""
    return to_gray(ir), to_gray(vis)  # the cache freezes them


def score_cddfuse(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> dict[str, float]:
    """All 11 metrics of one image in `NAMES` order; inputs are uint8 arrays (RGB or gray) as read."""
    f, (a, b) = to_gray(fused), _source_grays(ir, vis)
    return {
        "EN": en(f), "SD": sd(f), "SF": sf(f), "AG": ag(f),
        "MI": mi(f, a, b), "SCD": scd(f, a, b), "VIF": vif(f, a, b), "Qabf": qabf_metric(f, a, b),
        "SSIM": ssim(f, a, b), "CC": cc(f, a, b), "PSNR": psnr(f, a, b),
    }

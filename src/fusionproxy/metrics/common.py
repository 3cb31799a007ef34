"""Pieces both conventions share: input checks, histograms and the Xydeas-Petrovic Q^AB/F edge metric."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Sobel kernels of Xydeas & Petrovic's reference code: h3 responds to x (columns), h1 to y (rows).
_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])

# Sigmoid parameters of the edge-strength (g) and orientation (a) preservation terms.
_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def histogram_256(values: np.ndarray) -> np.ndarray:
    """Relative frequencies of the 256 integer levels of a 0..255 image (non-integers are floored)."""
    counts = np.bincount(np.floor(values).astype(np.int64).ravel(), minlength=256)
    return counts / values.size


def entropy_bits(probabilities: np.ndarray) -> float:
    """Shannon entropy -sum p log2 p over the non-zero probabilities."""
    p = probabilities[probabilities > 0]
    return float(-(p * np.log2(p)).sum())


def _edges(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel strength g and orientation atan(Sy/Sx) (pi/2 where Sx = 0), from `conv2(..., 'same')`."""
    sx = ndimage.convolve(image, _SOBEL_X, mode="constant")
    sy = ndimage.convolve(image, _SOBEL_Y, mode="constant")
    strength = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where(sx == 0, np.pi / 2, np.arctan(sy / sx))
    return strength, angle


def _preservation(g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Q^{XF} per pixel = Q_g * Q_a (Xydeas & Petrovic 2000, Eq. 3-5).

    Both reference implementations set the strength ratio to g_F itself (not 1) where g_src == g_F; that
    quirk is kept: it only matters where the two strengths are equal and non-zero.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(g_src > g_f, g_f / g_src, np.where(g_src == g_f, g_f, g_src / g_f))
    orientation = 1.0 - np.abs(a_src - a_f) / (np.pi / 2)
    q_g = _TG / (1.0 + np.exp(_KG * (ratio - _DG)))
    q_a = _TA / (1.0 + np.exp(_KA * (orientation - _DA)))
    return q_g * q_a


def qabf(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> float:
    """Q^{AB/F} = sum(Q^{AF} g_A + Q^{BF} g_B) / sum(g_A + g_B): edge information carried from A, B to F."""
    g_a, a_a = _edges(a)
    g_b, a_b = _edges(b)
    g_f, a_f = _edges(fused)
    q_af = _preservation(g_a, a_a, g_f, a_f)
    q_bf = _preservation(g_b, a_b, g_f, a_f)
    return float((q_af * g_a + q_bf * g_b).sum() / (g_a + g_b).sum())

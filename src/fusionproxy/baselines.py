"""Classical, training-free fusion baselines, so every evaluation table has reference rows.

Each baseline maps `ir` (H x W float in [0, 1]) and `vis` (H x W x 3 RGB float in [0, 1]) to an RGB
H x W x 3 float image in [0, 1]. All of them fuse the IR frame with the visible *luminance* and keep the
visible chroma (YCbCr), the usual way grey-level fusion rules are applied to colour inputs; this keeps colours
and makes every rule monotone per channel. They are deterministic.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .registry import Registry

Baseline = Callable[[np.ndarray, np.ndarray], np.ndarray]
BASELINES: Registry[np.ndarray] = Registry("baseline")


def _with_vis_chroma(fuse_luminance: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Baseline:
    """Lift a rule on (IR, VIS-Y) grey images to RGB by replacing VIS luminance and keeping its Cr/Cb."""

    def fuse(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        ir, vis = _check(ir, vis)
        ycrcb = cv2.cvtColor(vis, cv2.COLOR_RGB2YCrCb)
        ycrcb[..., 0] = fuse_luminance(ir, ycrcb[..., 0])
        return np.clip(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB), 0.0, 1.0)

    fuse.__doc__ = fuse_luminance.__doc__
    fuse.__name__ = fuse_luminance.__name__
    return fuse


def _check(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if ir.ndim != 2 or vis.ndim != 3 or vis.shape[2] != 3 or ir.shape != vis.shape[:2]:
        raise ValueError(f"expected ir H x W and vis H x W x 3 of the same size, got {ir.shape} and {vis.shape}")
    return np.ascontiguousarray(ir, dtype=np.float32), np.ascontiguousarray(vis, dtype=np.float32)


@BASELINES.register("average")
@_with_vis_chroma
def average(ir: np.ndarray, luminance: np.ndarray) -> np.ndarray:
    """Mean of IR and VIS luminance."""
    return 0.5 * (ir + luminance)


@BASELINES.register("max")
@_with_vis_chroma
def maximum(ir: np.ndarray, luminance: np.ndarray) -> np.ndarray:
    """Per-pixel maximum of IR and VIS luminance (keeps hot targets and bright visible detail)."""
    return np.maximum(ir, luminance)


def pyramid_levels(height: int, width: int, max_levels: int = 5, coarsest_side: int = 16) -> int:
    """Number of Laplacian levels: as many as keep the coarsest image at least `coarsest_side` px."""
    levels = 0
    while levels < max_levels and min(height, width) >> (levels + 1) >= coarsest_side:
        levels += 1
    return levels


def _laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass images (finest first) followed by the low-pass residual (Burt & Adelson 1983)."""
    pyramid, current = [], image
    for _ in range(levels):
        down = cv2.pyrDown(current)
        pyramid.append(current - cv2.pyrUp(down, dstsize=current.shape[::-1]))
        current = down
    pyramid.append(current)
    return pyramid


def _collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = cv2.pyrUp(image, dstsize=band.shape[::-1]) + band
    return image


@BASELINES.register("laplacian")
@_with_vis_chroma
def laplacian(ir: np.ndarray, luminance: np.ndarray) -> np.ndarray:
    """Laplacian-pyramid fusion: max-absolute selection of band-pass detail, averaged low-pass base."""
    levels = pyramid_levels(*ir.shape)
    bands_ir, bands_vis = _laplacian_pyramid(ir, levels), _laplacian_pyramid(luminance, levels)
    fused = [np.where(np.abs(a) >= np.abs(b), a, b) for a, b in zip(bands_ir[:-1], bands_vis[:-1])]
    fused.append(0.5 * (bands_ir[-1] + bands_vis[-1]))
    return _collapse(fused)


def get_baseline(name: str) -> Baseline:
    """The baseline called `name` (see `list_baselines()`); KeyError lists the known names."""
    return BASELINES.get(name)


def list_baselines() -> list[str]:
    return BASELINES.names()

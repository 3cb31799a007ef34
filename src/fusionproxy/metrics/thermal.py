"""Thermal-target contrast (TTC): how much of the IR frame's hot-target contrast a fused image keeps.

Qabf, VIF and SSIM reward structure taken from either source, so a fusion can score well while the warm
people and cars of the IR frame fade into the visible background. TTC measures exactly that loss. Its
definition is fixed (docs/guides/evaluate-and-metrics.md, "Thermal-target contrast (TTC)") so that figures
compare across tools:

- `t`: the IR frame's BT.601 luma in [0, 1]; background `b = cv2.GaussianBlur(t, (0, 0), 20)`;
- targets: `t - b > 0.12`, opened with a 3 x 3 square; fewer than 30 target pixels = no targets;
- ring: the targets dilated with a 21 x 21 square, minus the targets;
- `contrast(y)` = mean of `y` over the targets - mean of `y` over the ring, `y` a frame's BT.601 luma;
- `TTC = contrast(fused) / contrast(IR)`: 1 = targets stand out as in the thermal frame, about 0 = invisible.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import FusionProxyError
from .common import cached_by_content

NAME = "TTC"
BACKGROUND_SIGMA = 20.0
THRESHOLD = 0.12
MIN_TARGET_PIXELS = 30
RING_SIZE = 21
# BT.601, the weights of `fusionproxy.io.LUMA_WEIGHTS` (not imported: io pulls in torch, the metrics do not).
_LUMA = np.array([0.299, 0.587, 0.114])


def luma(image: np.ndarray) -> np.ndarray:
    """float64 H x W in [0, 1] from H x W or H x W x 3 (alpha ignored): uint8 is divided by 255, floats are
    taken as already in [0, 1]; colour becomes its BT.601 luma."""
    array = np.asarray(image)
    values = array.astype(np.float64) / (255.0 if array.dtype == np.uint8 else 1.0)
    return values[..., :3] @ _LUMA if values.ndim == 3 else values


def thermal_targets(ir: np.ndarray) -> np.ndarray:
    """Boolean H x W mask of the IR frame's hot targets; all False when fewer than 30 pixels qualify."""
    t = np.ascontiguousarray(luma(ir))
    hot = (t - cv2.GaussianBlur(t, (0, 0), BACKGROUND_SIGMA) > THRESHOLD).astype(np.uint8)
    targets = cv2.morphologyEx(hot, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    return targets if targets.sum() >= MIN_TARGET_PIXELS else np.zeros_like(targets)


def _contrast(y: np.ndarray, targets: np.ndarray, ring: np.ndarray) -> float:
    return float(y[targets].mean() - y[ring].mean())


@cached_by_content()
def _reference(ir: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(targets, ring, contrast(IR)) of one IR frame, computed once for all the methods scored against it;
    the contrast is NaN without targets (or if they fill the frame, leaving no ring)."""
    targets = thermal_targets(ir)
    ring = cv2.dilate(targets.astype(np.uint8), np.ones((RING_SIZE, RING_SIZE), np.uint8)).astype(bool) & ~targets
    return targets, ring, _contrast(luma(ir), targets, ring) if ring.any() else math.nan


def thermal_target_contrast(fused: np.ndarray, ir: np.ndarray) -> float:
    """TTC of `fused` against its IR source (same H x W; uint8 as read, or float in [0, 1]).

    NaN when the IR frame has no targets, or no positive contrast to keep (the ratio would be meaningless),
    so means over a test set leave such frames out.
    """
    targets, ring, reference = _reference(ir)
    if np.shape(fused)[:2] != targets.shape:
        raise FusionProxyError(f"fused image {np.shape(fused)[:2]} and IR frame {targets.shape} differ in size")
    if not reference > 0:
        return math.nan
    return _contrast(luma(fused), targets, ring) / reference

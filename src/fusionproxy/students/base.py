"""What every student network shares: the forward contract, padding to the stride, and its config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class StudentConfig:
    """Fields every student config has; each architecture subclasses this with its own widths and depths."""

    uncertainty_head: bool = False  # also predict the teacher ensemble's per-pixel log-variance

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FusionStudent(nn.Module):
    """Base class: maps `ir` (B x 1 x H x W) and `vis` (B x 3 x H x W) in [0, 1] to RGB in [0, 1].

    Subclasses implement `fuse(ir, vis, uncertainty)` on inputs already padded to a multiple of `stride`,
    returning `(rgb, log_variance)` where `log_variance` is None unless `config.uncertainty_head` and
    `uncertainty` (so the RGB-only path never pays for the head). This class pads
    (replicate) and crops back, so any H x W works, and `forward` returns only the RGB image so the module
    can sit in front of any RGB network unchanged.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[StudentConfig]] = StudentConfig

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def stride(self) -> int:
        """Input sides are padded to a multiple of this."""
        raise NotImplementedError

    def fuse(
        self, ir: torch.Tensor, vis: torch.Tensor, uncertainty: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def forward_with_uncertainty(
        self, ir: torch.Tensor, vis: torch.Tensor, uncertainty: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """RGB (B x 3 x H x W) and, with the uncertainty head and `uncertainty`, log-variance (B x 1 x H x W)."""
        height, width = vis.shape[-2:]
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        if pad_h or pad_w:
            ir = F.pad(ir, (0, pad_w, 0, pad_h), mode="replicate")
            vis = F.pad(vis, (0, pad_w, 0, pad_h), mode="replicate")
        rgb, log_variance = self.fuse(ir, vis, uncertainty)
        rgb = rgb[..., :height, :width]
        if log_variance is not None:
            log_variance = log_variance[..., :height, :width]
        return rgb, log_variance

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.forward_with_uncertainty(ir, vis, uncertainty=False)[0]

"""`dtpf_student`: DTPF's distilled student (width 16, FFN expansion 2, 2 refinement blocks, no text path)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..dtpf.network import DTPFArchitecture, DTPFNet
from .base import FusionStudent, StudentConfig
from .registry import register_student


@dataclass
class DTPFStudentConfig(DTPFArchitecture, StudentConfig):
    width: int = 16
    expansion: float = 2.0
    refinement_blocks: int = 2


@register_student
class DTPFStudent(FusionStudent):
    """The DTPF network without text modulation (Sec. III-B 2); output clamped to [0, 1].

    `forward(ir, vis, features=True)` returns the unclamped output and the decoder features instead, on inputs
    whose sides are multiples of `stride` (training crops); distillation uses it.
    """

    name = "dtpf_student"
    config_class = DTPFStudentConfig
    config: DTPFStudentConfig

    def __init__(self, config: DTPFStudentConfig) -> None:
        super().__init__(config)
        if config.uncertainty_head:
            raise ValueError("dtpf_student has no uncertainty head")
        self.net = DTPFNet(config)

    @property
    def stride(self) -> int:
        return self.config.stride

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor, uncertainty: bool = True) -> tuple[torch.Tensor, None]:
        return self.net(ir, vis)[0].clamp(0.0, 1.0), None

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, features: bool = False):  # type: ignore[override]
        if features:
            return self.net(ir, vis)
        return super().forward(ir, vis)

"""DTPF's text-guided teacher (Sec. III-B 1): the DTPF network at width 48 with text modulation (Eq. 9).

The teacher carries the embeddings of every event sentence (`event_embeddings`, len(EVENT_TYPES) x text_dim)
as a buffer, so a saved teacher runs without the sentence encoder. A teacher directory is the package's shared
model format (`fusionproxy.model_dir`, registry "dtpf", entry "dtpf_teacher").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import FusionProxyError
from ..model_dir import SavedModel
from .network import DTPFArchitecture, DTPFNet, pad_to_stride
from .text import EVENT_TYPES

MODEL_NAME = "dtpf_teacher"


@dataclass
class DTPFTeacherConfig(DTPFArchitecture):
    text_encoder: str = "minilm"  # "minilm" or a local CLIP weights directory (see text.SentenceEncoder)
    text_dim: int = 384  # the encoder's embedding size (MiniLM 384, CLIP ViT-B/32 512)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class DTPFTeacher(SavedModel, nn.Module):
    """`forward(ir, vis, text)` -> fused RGB in [0, 1] for any H x W; `text` is B x text_dim embeddings or a
    B-long tensor of indices into EVENT_TYPES. `features=True` returns (unclamped rgb, decoder features) on
    inputs whose sides are multiples of `stride`, as training uses it."""

    model_registry = "dtpf"
    legacy_key = "model"

    def __init__(self, config: DTPFTeacherConfig) -> None:
        super().__init__()
        self.config = config
        self.net = DTPFNet(config, text_dim=config.text_dim)
        self.register_buffer("event_embeddings", torch.zeros(len(EVENT_TYPES), config.text_dim))

    @property
    def stride(self) -> int:
        return self.config.stride

    def text_embedding(self, text: torch.Tensor) -> torch.Tensor:
        return text if text.is_floating_point() else self.event_embeddings[text]

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, text: torch.Tensor, features: bool = False):
        text = self.text_embedding(text)
        if features:
            return self.net(ir, vis, text)
        height, width = vis.shape[-2:]
        ir, vis = pad_to_stride(self.stride, ir, vis)
        return self.net(ir, vis, text)[0][..., :height, :width].clamp(0.0, 1.0)

    def model_entry(self) -> str:
        return MODEL_NAME

    def model_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_model_config(cls, name: str, config: dict[str, Any], record: dict[str, Any]) -> "DTPFTeacher":
        if name != MODEL_NAME:
            raise FusionProxyError(f"not a DTPF teacher config (a '{name}', expected '{MODEL_NAME}')")
        return cls(DTPFTeacherConfig(**config))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "DTPFTeacher":
        return super().from_pretrained(directory).to(device)

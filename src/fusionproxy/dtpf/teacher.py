"""DTPF's text-guided teacher (Sec. III-B 1): the DTPF network at width 48 with text modulation (Eq. 9).

The teacher carries the embeddings of every event sentence (`event_embeddings`, len(EVENT_TYPES) x text_dim)
as a buffer, so a saved teacher runs without the sentence encoder. A teacher directory holds `config.json`
({"model": "dtpf_teacher", "config": {...}, "format_version": 1}) and `model.safetensors`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from ..errors import FusionProxyError, MissingWeightsError
from .network import DTPFArchitecture, DTPFNet, pad_to_stride
from .text import EVENT_TYPES

MODEL_NAME = "dtpf_teacher"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class DTPFTeacherConfig(DTPFArchitecture):
    text_encoder: str = "minilm"  # "minilm" or a local CLIP weights directory (see text.SentenceEncoder)
    text_dim: int = 384  # the encoder's embedding size (MiniLM 384, CLIP ViT-B/32 512)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class DTPFTeacher(nn.Module):
    """`forward(ir, vis, text)` -> fused RGB in [0, 1] for any H x W; `text` is B x text_dim embeddings or a
    B-long tensor of indices into EVENT_TYPES. `features=True` returns (unclamped rgb, decoder features) on
    inputs whose sides are multiples of `stride`, as training uses it."""

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

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        record = {"model": MODEL_NAME, "config": self.config.to_dict(), "format_version": FORMAT_VERSION}
        save_model(self, str(directory / WEIGHTS_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "DTPFTeacher":
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not config_path.is_file() or not weights_path.is_file():
            raise MissingWeightsError(f"{directory}: not a DTPF teacher directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            record = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FusionProxyError(f"{config_path}: corrupt teacher config ({error})") from None
        if not isinstance(record, dict) or record.get("model") != MODEL_NAME:
            raise FusionProxyError(f"{config_path}: not a DTPF teacher config (expected \"model\": \"{MODEL_NAME}\")")
        try:
            teacher = cls(DTPFTeacherConfig(**record["config"]))
            load_model(teacher, weights_path, strict=True, device=str(device))
        except (TypeError, ValueError, KeyError) as error:
            raise FusionProxyError(f"{config_path}: cannot build the teacher ({error})") from None
        except (SafetensorError, RuntimeError, OSError) as error:
            message = " ".join(str(error).split())[:300]
            raise FusionProxyError(f"{weights_path}: corrupt or mismatched weights ({message})") from None
        return teacher.to(device).eval()

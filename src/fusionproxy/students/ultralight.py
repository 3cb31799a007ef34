"""`ultralight`: a plain small CNN (3x3 conv + ReLU) in the dual-encoder U-Net layout (paper Table 4, row i)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .registry import register_student
from .dual_unet import DualEncoderUNet, DualUNetConfig


def conv_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.ReLU(inplace=True))


@dataclass
class UltralightConfig(DualUNetConfig):
    widths: tuple[int, ...] = (8, 16, 32, 64)
    depths: tuple[int, ...] = (1, 1, 1, 1)


@register_student
class Ultralight(DualEncoderUNet):
    """Patchify stem + ReLU, strided 3x3 convs to downsample, stacks of 3x3 conv + ReLU."""

    name = "ultralight"
    config_class = UltralightConfig
    config: UltralightConfig

    def stem(self, in_channels: int, width: int) -> nn.Module:
        s = self.config.stem_stride
        return nn.Sequential(nn.Conv2d(in_channels, width, s, stride=s), nn.ReLU(inplace=True))

    def downsample(self, in_channels: int, out_channels: int) -> nn.Module:
        return conv_relu(in_channels, out_channels, stride=2)

    def stage(self, width: int, depth: int) -> nn.Module:
        return nn.Sequential(*(conv_relu(width, width) for _ in range(depth)))

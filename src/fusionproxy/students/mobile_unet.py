"""`mobile_unet`: the dual-encoder U-Net built from MobileNet inverted-residual blocks (paper Table 4, row k)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .registry import register_student
from .blocks import InvertedResidual, conv_bn_act
from .dual_unet import DualEncoderUNet, DualUNetConfig


@dataclass
class MobileUNetConfig(DualUNetConfig):
    expand_ratio: int = 4
    kernel_size: int = 3


@register_student
class MobileUNet(DualEncoderUNet):
    """Patchify stem (conv + BN + ReLU), strided inverted residuals to downsample, inverted-residual stages."""

    name = "mobile_unet"
    config_class = MobileUNetConfig
    config: MobileUNetConfig

    def stem(self, in_channels: int, width: int) -> nn.Module:
        s = self.config.stem_stride
        return nn.Sequential(nn.Conv2d(in_channels, width, s, stride=s, bias=False), nn.BatchNorm2d(width), nn.ReLU())

    def downsample(self, in_channels: int, out_channels: int) -> nn.Module:
        return InvertedResidual(in_channels, out_channels, 2, self.config.expand_ratio, self.config.kernel_size)

    def stage(self, width: int, depth: int) -> nn.Module:
        cfg = self.config
        return nn.Sequential(
            *(InvertedResidual(width, width, 1, cfg.expand_ratio, cfg.kernel_size) for _ in range(depth))
        )

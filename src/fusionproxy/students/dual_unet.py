"""The shape every student shares: two encoders (IR, VIS), an Eq. 13 fusion head per scale, a U-Net decoder.

Subclasses choose the blocks (`stem`, `downsample`, `stage`); this module wires them together:

    ir  -> stem -> stage_0 -> down -> stage_1 -> ... -> stage_{n-1}
    vis -> stem -> stage_0 -> down -> stage_1 -> ... -> stage_{n-1}
                      |                 |                   |
                 FusionHead_0      FusionHead_1   ...  FusionHead_{n-1}
                      |                 |                   |
    rgb <- head <- dec_0 <- merge <- dec_1 <- ... <- up <- fused_{n-1}

The stem patchifies by `stem_stride`, so the encoder and decoder run at 1/stem_stride and below; the output
head predicts `stem_stride**2` sub-pixels per position and pixel-shuffles them back to full resolution.

Output parametrisation: the head predicts, per pixel and channel, the coefficients of an affine mix of the
two sources, rgb = (1 + a) * vis + b * ir + c. Source detail reaches the output at full resolution without
passing through the stride-`stem_stride` trunk, and the gradient of the IR and offset terms does not shrink on dark pixels.
(A residual in logit space over VIS, tried first, damped exactly the dark night-time pixels where the IR
matters; on the RoadScene cache, 150 pixel-loss steps reached 20.9 dB against the ensemble mean with it and
23.6 dB with this mix.) A fresh student (small weights) returns the visible image. Training sees the raw mix,
so an overshoot is still penalised; inference (`eval()`) clamps to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import FusionStudent, StudentConfig
from .blocks import FusionHead, InputAwareUncertaintyHead, SubPixelConv, subpixel_conv


def blend_sources(ir: torch.Tensor, vis: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """rgb = (1 + a) * vis + b * ir + c per pixel and channel, (a, b, c) = the 9 full-resolution coefficient maps."""
    a, b, c = coefficients.chunk(3, dim=1)
    return (1 + a) * vis + b * ir + c


@dataclass
class DualUNetConfig(StudentConfig):
    """Fields of every dual-encoder U-Net student; widths/depths run from the finest scale to the coarsest."""

    widths: tuple[int, ...] = (16, 32, 64, 128)
    depths: tuple[int, ...] = (1, 1, 2, 3)  # blocks per encoder stage (each encoder)
    decoder_depths: tuple[int, ...] = (1, 1, 1)  # blocks per decoder stage, scales 0 .. n-2
    stem_stride: int = 4  # the stem patchifies by this; the full stride is stem_stride * 2**(len(widths) - 1)
    attention_reduction: int = 4  # channel-attention bottleneck of the fusion heads
    # Width of a 3 x 3 conv + GELU in front of the log-variance head's projection; 0 keeps the single 1 x 1
    # conv of the models saved before it (a linear read-out ranked pixels against the ensemble's std).
    uncertainty_hidden: int = 0
    # The head also reads IR, VIS and their difference at full resolution (blocks.InputAwareUncertaintyHead,
    # width uncertainty_hidden): the only variant whose std ranks held-out pixels like the ensemble's.
    uncertainty_inputs: bool = False

    def __post_init__(self) -> None:
        # Configs read back from JSON carry lists.
        self.widths, self.depths = tuple(self.widths), tuple(self.depths)
        self.decoder_depths = tuple(self.decoder_depths)
        if not self.widths or len(self.depths) != len(self.widths):
            raise ValueError(f"widths {self.widths} and depths {self.depths} must be non-empty and of equal length")
        if len(self.decoder_depths) != len(self.widths) - 1:
            raise ValueError(f"decoder_depths {self.decoder_depths} needs one entry per scale but the coarsest")
        if min(self.widths) < 1 or min(self.depths + self.decoder_depths) < 0 or self.stem_stride < 1:
            raise ValueError("widths and stem_stride must be positive, depths non-negative")
        if self.uncertainty_inputs and self.uncertainty_hidden < 1:
            raise ValueError("uncertainty_inputs needs uncertainty_hidden >= 1 (the head's width)")


class Encoder(nn.Module):
    """stem -> stage_0 -> (downsample -> stage_i)...; returns the feature of every scale."""

    def __init__(self, stem: nn.Module, downsamples: list[nn.Module], stages: list[nn.Module]) -> None:
        super().__init__()
        self.stem = stem
        self.downsamples = nn.ModuleList([nn.Identity(), *downsamples])
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.stem(x)
        for downsample, stage in zip(self.downsamples, self.stages):
            x = stage(downsample(x))
            features.append(x)
        return features


class DualEncoderUNet(FusionStudent):
    """Base of the registered students; see the module docstring for the layout."""

    config: DualUNetConfig

    def __init__(self, config: DualUNetConfig) -> None:
        super().__init__(config)
        widths, s = config.widths, config.stem_stride
        self.ir_encoder = self._encoder(1)
        self.vis_encoder = self._encoder(3)
        self.fusion_heads = nn.ModuleList(FusionHead(w, config.attention_reduction) for w in widths)
        # Upsampling by a 1x1 conv and pixel shuffle: as expressive as a 2x2 transposed conv.
        self.upsamples = nn.ModuleList(SubPixelConv(widths[i + 1], widths[i], 2) for i in range(len(widths) - 1))
        self.merges = nn.ModuleList(nn.Conv2d(2 * w, w, 1) for w in widths[:-1])
        self.decoder_stages = nn.ModuleList(
            self.stage(w, depth) for w, depth in zip(widths[:-1], config.decoder_depths)
        )
        self.rgb_head = nn.Conv2d(widths[0], 9 * s * s, 1)  # sub-pixel blend coefficients, see blend_sources
        self.log_variance_head = self._log_variance_head() if config.uncertainty_head else None
        self.apply(self._init_weights)

    def _log_variance_head(self) -> nn.Module:
        width, hidden, s = self.config.widths[0], self.config.uncertainty_hidden, self.config.stem_stride
        if self.config.uncertainty_inputs:
            return InputAwareUncertaintyHead(width, hidden, s)
        layers: list[nn.Module] = [nn.Conv2d(width, hidden, 3, padding=1), nn.GELU()] if hidden else []
        layers += [nn.Conv2d(hidden or width, s * s, 1), nn.PixelShuffle(s)]
        return nn.Sequential(*layers)

    # Blocks, chosen by each architecture.
    def stem(self, in_channels: int, width: int) -> nn.Module:
        """in_channels -> width at 1/stem_stride resolution."""
        raise NotImplementedError

    def downsample(self, in_channels: int, out_channels: int) -> nn.Module:
        """Halves the resolution."""
        raise NotImplementedError

    def stage(self, width: int, depth: int) -> nn.Module:
        """`depth` blocks at constant width and resolution."""
        raise NotImplementedError

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # ConvNeXt's initialisation; small weights also make the initial residual small (output ~ VIS).
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def _encoder(self, in_channels: int) -> Encoder:
        widths, depths = self.config.widths, self.config.depths
        return Encoder(
            self.stem(in_channels, widths[0]),
            [self.downsample(widths[i - 1], widths[i]) for i in range(1, len(widths))],
            [self.stage(w, d) for w, d in zip(widths, depths)],
        )

    @property
    def stride(self) -> int:
        return self.config.stem_stride * 2 ** (len(self.config.widths) - 1)

    def fuse(
        self, ir: torch.Tensor, vis: torch.Tensor, uncertainty: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        fused = [head(a, b) for head, a, b in zip(self.fusion_heads, self.ir_encoder(ir), self.vis_encoder(vis))]
        x = fused[-1]
        for i in reversed(range(len(fused) - 1)):
            x = self.upsamples[i](x)
            x = self.decoder_stages[i](self.merges[i](torch.cat([x, fused[i]], dim=1)))
        rgb = blend_sources(ir, vis, subpixel_conv(x, self.rgb_head, self.config.stem_stride))
        if not self.training:
            rgb = rgb.clamp(0, 1)
        # The head reads the decoder's features without moving them: its target (the teachers' disagreement)
        # must not pull the fused image's features away from the ensemble mean.
        head = self.log_variance_head if uncertainty else None
        if head is None:
            return rgb, None
        if isinstance(head, InputAwareUncertaintyHead):
            return rgb, head(x.detach(), ir, vis)
        return rgb, head(x.detach())

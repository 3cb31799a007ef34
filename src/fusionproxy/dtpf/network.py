"""The DTPF fusion network (paper Sec. III-B, Fig. 2): dual-stream encoder, spatial-channel cross fusion,
text-modulated decoder with progressive refinement. The teacher and the student are the same network at
different widths; only the teacher has the text path (Eq. 9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SSAB, TSAB, DualAttentionBlock


@dataclass
class DTPFArchitecture:
    """Widths and depths; the defaults are the teacher's (width 48: levels 48/96/192/384)."""

    width: int = 48
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # per level, encoder and decoder alike
    channel_heads: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    spatial_heads: list[int] = field(default_factory=lambda: [2, 2, 3, 4])
    spatial_head_dim: int = 16
    window: int = 8
    overlap: float = 0.5
    expansion: float = 2.66
    refinement_blocks: int = 4

    def channels(self, level: int) -> int:
        return self.width * 2**level

    @property
    def stride(self) -> int:
        """Inputs are padded to a multiple of this: OCA windows must tile the deepest (1/8 scale) level."""
        return self.window * 2 ** (len(self.blocks) - 1)


def _stage(arch: DTPFArchitecture, level: int, count: int) -> nn.Sequential:
    return nn.Sequential(
        *(
            DualAttentionBlock(
                arch.channels(level), arch.channel_heads[level], arch.spatial_heads[level], arch.expansion,
                arch.spatial_head_dim, arch.window, arch.overlap,
            )
            for _ in range(count)
        )
    )


class Encoder(nn.Module):
    """One modality's stream (Eq. 3): 3x3 embedding, then per level its blocks and a halving downsample."""

    def __init__(self, in_channels: int, arch: DTPFArchitecture) -> None:
        super().__init__()
        levels = len(arch.blocks)
        self.embed = nn.Conv2d(in_channels, arch.width, 3, padding=1, bias=False)
        self.stages = nn.ModuleList(_stage(arch, level, arch.blocks[level]) for level in range(levels))
        # conv to C/2 then pixel-unshuffle: half the resolution, twice the channels
        self.downsample = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(arch.channels(level), arch.channels(level) // 2, 3, padding=1, bias=False),
                nn.PixelUnshuffle(2),
            )
            for level in range(levels - 1)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.embed(x)
        for level, stage in enumerate(self.stages):
            if level:
                x = self.downsample[level - 1](x)
            x = stage(x)
            features.append(x)
        return features


class CrossFusion(nn.Module):
    """Spatial-channel cross fusion at the deepest level (Eq. 6-8).

    Each modality's branch concatenates its own spatially attended features (SSAB) with the other modality's
    channel-attended features (TSAB), mixes them with a 1x1 conv; the two branches are summed.
    """

    def __init__(self, arch: DTPFArchitecture, level: int) -> None:
        super().__init__()
        c = arch.channels(level)
        spatial = (arch.spatial_heads[level], arch.expansion, arch.spatial_head_dim, arch.window, arch.overlap)
        self.spatial_vis, self.spatial_ir = SSAB(c, *spatial), SSAB(c, *spatial)
        self.channel_vis = TSAB(c, arch.channel_heads[level], arch.expansion)
        self.channel_ir = TSAB(c, arch.channel_heads[level], arch.expansion)
        self.mix_vis, self.mix_ir = nn.Conv2d(2 * c, c, 1, bias=False), nn.Conv2d(2 * c, c, 1, bias=False)

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        vis_hat = self.mix_vis(torch.cat([self.spatial_vis(vis), self.channel_ir(ir)], dim=1))  # Eq. 6
        ir_hat = self.mix_ir(torch.cat([self.spatial_ir(ir), self.channel_vis(vis)], dim=1))  # Eq. 7
        return vis_hat + ir_hat  # Eq. 8


class SkipFusion(nn.Module):
    """Fuses the two modalities' skip features at levels 1-3: a channel gate and a spatial gate applied in
    parallel to their concatenation (the "adaptive fusion" of Table IV), then a 3x3 conv back to C channels."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        both = 2 * channels
        self.channel_gate = nn.Sequential(
            nn.Conv2d(both, max(both // reduction, 4), 1), nn.ReLU(), nn.Conv2d(max(both // reduction, 4), both, 1)
        )
        self.spatial_gate = nn.Conv2d(2, 1, 7, padding=3)
        self.reduce = nn.Conv2d(both, channels, 3, padding=1, bias=False)

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        x = torch.cat([vis, ir], dim=1)
        channel = torch.sigmoid(self.channel_gate(x.mean(dim=(2, 3), keepdim=True)))
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        spatial = torch.sigmoid(self.spatial_gate(pooled))
        return self.reduce(x * channel + x * spatial)


class TextModulation(nn.Module):
    """Eq. 9: (1 + gamma(T)) * F + beta(T), with (gamma, beta) = Linear(ReLU(Linear(T)))."""

    def __init__(self, text_dim: int, channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(text_dim, channels), nn.ReLU(), nn.Linear(channels, 2 * channels))

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.mlp(text)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * x + beta


class DTPFNet(nn.Module):
    """ir (B x 1 x H x W), vis (B x 3 x H x W), H and W multiples of `arch.stride` -> (rgb, decoder features).

    `rgb` is the 3x3 output conv plus the visible image (global residual), not yet clamped, so training
    losses keep their gradients at saturated pixels; callers clamp to [0, 1] for use. The decoder features
    (bottleneck, then decoder levels 3, 2, 1 after refinement) are what distillation matches (Eq. 17).
    With `text_dim`, text embeddings modulate the fused bottleneck and the upsampled decoder features at
    every level (Eq. 9); skips stay unmodulated.
    """

    def __init__(self, arch: DTPFArchitecture, text_dim: int | None = None) -> None:
        super().__init__()
        levels = len(arch.blocks)
        for name in ("channel_heads", "spatial_heads"):
            if len(getattr(arch, name)) != levels:
                raise ValueError(f"DTPF: {name} needs one entry per level ({levels})")
        self.arch, self.text_dim = arch, text_dim
        deepest = levels - 1
        self.encode_vis, self.encode_ir = Encoder(3, arch), Encoder(1, arch)
        self.cross_fusion = CrossFusion(arch, deepest)
        self.skip_fusion = nn.ModuleList(SkipFusion(arch.channels(level)) for level in range(deepest))
        # Decoder modules are indexed by the level they produce (0 .. deepest - 1).
        self.upsample = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(arch.channels(level + 1), 2 * arch.channels(level + 1), 3, padding=1, bias=False),
                nn.PixelShuffle(2),
            )
            for level in range(deepest)
        )
        self.reduce = nn.ModuleList(
            nn.Conv2d(2 * arch.channels(level), arch.channels(level), 1, bias=False) for level in range(deepest)
        )
        self.decode = nn.ModuleList(_stage(arch, level, arch.blocks[level]) for level in range(deepest))
        self.refine = _stage(arch, 0, arch.refinement_blocks)
        self.to_rgb = nn.Conv2d(arch.width, 3, 3, padding=1, bias=False)
        nn.init.zeros_(self.to_rgb.weight)  # start as the identity on the visible image (global residual)
        self.modulate_bottleneck = TextModulation(text_dim, arch.channels(deepest)) if text_dim else None
        self.modulate_decoder = (
            nn.ModuleList(TextModulation(text_dim, arch.channels(level)) for level in range(deepest))
            if text_dim
            else None
        )

    def forward(
        self, ir: torch.Tensor, vis: torch.Tensor, text: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if (text is None) != (self.text_dim is None):
            raise ValueError("DTPF: pass a text embedding exactly when the network has a text path")
        vis_features, ir_features = self.encode_vis(vis), self.encode_ir(ir)
        x = self.cross_fusion(vis_features[-1], ir_features[-1])
        if self.modulate_bottleneck is not None:
            x = self.modulate_bottleneck(x, text)
        features = [x]
        for level in reversed(range(len(self.decode))):
            x = self.upsample[level](x)
            if self.modulate_decoder is not None:
                x = self.modulate_decoder[level](x, text)
            skip = self.skip_fusion[level](vis_features[level], ir_features[level])
            x = self.decode[level](self.reduce[level](torch.cat([x, skip], dim=1)))
            if level == 0:
                x = self.refine(x)  # Eq. 11
            features.append(x)
        return self.to_rgb(x) + vis, features


def pad_to_stride(stride: int, *images: torch.Tensor) -> list[torch.Tensor]:
    """Replicate-pads each image's bottom/right so both sides are multiples of `stride`."""
    height, width = images[0].shape[-2:]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if not (pad_h or pad_w):
        return list(images)
    return [F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") for image in images]


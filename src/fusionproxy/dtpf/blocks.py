"""DTPF building blocks (paper Sec. III-B, Eq. 3-5): channel LayerNorm, MDTA, GDFN and overlapping cross-window
attention (OCA), composed into the transposed (TSAB) and spatial (SSAB) self-attention blocks.

All modules work on B x C x H x W tensors. MDTA and GDFN follow Restormer; OCA follows HAT's overlapping
cross-attention (queries from window x window tiles, keys/values from the enlarged overlapping tiles around
them, with a learned relative position bias). OCA needs H and W to be multiples of its window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (with bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias)
        return x.permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv-head transposed attention, MHA_c of Eq. 5: attention across channels, linear in H x W.

    Queries and keys are L2-normalised along the pixels, so each head's C/heads x C/heads attention map is a
    cosine similarity scaled by a learned per-head temperature.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"MDTA: {channels} channels do not split into {heads} heads")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        # The depthwise 3x3 gives every query/key/value channel local spatial context before the global mixing.
        self.qkv_local = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=False)
        self.project = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        q, k, v = self.qkv_local(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(batch, self.heads, channels // self.heads, height * width) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attention = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project((attention @ v).reshape(batch, channels, height, width))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: GELU(depthwise(x W1)) * depthwise(x W2), projected back."""

    def __init__(self, channels: int, expansion: float) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=False)
        self.local = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.local(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


def overlap_relative_index(window: int, extended: int) -> torch.Tensor:
    """(window^2) x (extended^2) index into a (window + extended - 1)^2 bias table.

    Query pixel (i, j) of a window and key pixel (m, n) of its centred extended window lie
    (m - pad - i, n - pad - j) apart, pad = (extended - window) / 2; each offset spans window + extended - 1 values.
    """
    pad = (extended - window) // 2
    span = window + extended - 1
    q = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    k = torch.stack(torch.meshgrid(torch.arange(extended), torch.arange(extended), indexing="ij")).flatten(1)
    offset = (k[:, None, :] - pad) - q[:, :, None] + (window - 1 + pad)  # 2 x window^2 x extended^2, >= 0
    return offset[0] * span + offset[1]


class OCA(nn.Module):
    """Overlapping cross-window attention, MHA_s of Eq. 4.

    Queries come from non-overlapping `window` x `window` tiles; keys and values from the centred
    `window * (1 + overlap)` tiles around them, so neighbouring windows exchange information without shifting.
    Each head has `head_dim` channels (the attention width is `heads * head_dim`, independent of `channels`).
    """

    def __init__(self, channels: int, heads: int, head_dim: int = 16, window: int = 8, overlap: float = 0.5) -> None:
        super().__init__()
        self.heads, self.head_dim, self.window = heads, head_dim, window
        self.extended = window + int(round(window * overlap))
        if (self.extended - window) % 2:
            raise ValueError(f"OCA: window {window} with overlap {overlap} does not extend evenly on both sides")
        inner = heads * head_dim
        self.scale = head_dim**-0.5
        self.q = nn.Conv2d(channels, inner, 1)
        self.kv = nn.Conv2d(channels, 2 * inner, 1)
        self.project = nn.Conv2d(inner, channels, 1)
        self.bias_table = nn.Parameter(torch.zeros((window + self.extended - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", overlap_relative_index(window, self.extended), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        ws, ext, heads, dim = self.window, self.extended, self.heads, self.head_dim
        rows, cols = height // ws, width // ws
        q = self.q(x).reshape(batch, heads, dim, rows, ws, cols, ws)
        q = q.permute(0, 3, 5, 1, 4, 6, 2).reshape(batch * rows * cols, heads, ws * ws, dim)
        # Unfold gathers every extended window (zero-padded at the border) as one column: B x (2 inner ext^2) x L.
        kv = F.unfold(self.kv(x), kernel_size=ext, stride=ws, padding=(ext - ws) // 2)
        kv = kv.reshape(batch, 2, heads, dim, ext * ext, rows * cols).permute(1, 0, 5, 2, 4, 3)
        k, v = kv.reshape(2, batch * rows * cols, heads, ext * ext, dim)
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)  # heads x ws^2 x ext^2
        attention = ((q * self.scale) @ k.transpose(-2, -1) + bias).softmax(dim=-1)
        out = (attention @ v).reshape(batch, rows, cols, heads, ws, ws, dim)
        out = out.permute(0, 3, 6, 1, 4, 2, 5).reshape(batch, heads * dim, height, width)
        return self.project(out)


class TSAB(nn.Module):
    """Transposed self-attention block (Eq. 5): x + MDTA(LN x), then x + GDFN(LN x)."""

    def __init__(self, channels: int, heads: int, expansion: float) -> None:
        super().__init__()
        self.norm1, self.attention = LayerNorm2d(channels), MDTA(channels, heads)
        self.norm2, self.ffn = LayerNorm2d(channels), GDFN(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class SSAB(nn.Module):
    """Spatial self-attention block (Eq. 4): x + OCA(LN x), then x + GDFN(LN x)."""

    def __init__(
        self, channels: int, heads: int, expansion: float, head_dim: int, window: int, overlap: float
    ) -> None:
        super().__init__()
        self.norm1, self.attention = LayerNorm2d(channels), OCA(channels, heads, head_dim, window, overlap)
        self.norm2, self.ffn = LayerNorm2d(channels), GDFN(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class DualAttentionBlock(nn.Sequential):
    """One spatial-channel self-attention block F_k of Eq. 3: a TSAB followed by an SSAB."""

    def __init__(
        self,
        channels: int,
        channel_heads: int,
        spatial_heads: int,
        expansion: float,
        head_dim: int,
        window: int,
        overlap: float,
    ) -> None:
        super().__init__(
            TSAB(channels, channel_heads, expansion),
            SSAB(channels, spatial_heads, expansion, head_dim, window, overlap),
        )

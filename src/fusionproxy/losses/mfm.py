"""Multi-foundation alignment (paper Eq. 9-10): the student's panel features against the ensemble's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

FEATURE_GRID = 64  # the common grid Omega (paper Sec. 4.1)
CHANNEL_REDUCTIONS = ("mean", "sum")


class StudentFeatures(nn.Module):
    """Phi~_k(S(x)): each frozen panel backbone on the student output, resampled to the feature grid (64 x 64
    in the paper; the cache's grid) and divided by its channel-wise training-set std sigma_k, exactly as the
    cached targets (Eq. 9) were made.

    The backbones are held outside the module's parameters and state (they are frozen, large, and already
    identified by the cache manifest), so checkpoints of the loss stay small.
    """

    def __init__(self, backbones: Sequence[nn.Module], sigmas: Sequence[torch.Tensor]) -> None:
        super().__init__()
        from ..foundation import resample_to_grid

        self._resample = resample_to_grid
        self._backbones = tuple(backbones)
        for backbone in self._backbones:
            # Eq. 12: only the student is updated; the panel just passes gradients to its input.
            backbone.requires_grad_(False).eval()
        for index, sigma in enumerate(sigmas):
            self.register_buffer(f"sigma_{index}", torch.as_tensor(sigma, dtype=torch.float32).view(1, -1, 1, 1),
                                 persistent=False)

    def forward(self, rgb: torch.Tensor, grid: int = FEATURE_GRID) -> list[torch.Tensor]:
        features = []
        for index, backbone in enumerate(self._backbones):
            backbone.to(rgb.device)
            resampled = self._resample(backbone(rgb), grid)
            features.append(resampled / getattr(self, f"sigma_{index}"))
        return features


def mfm_loss(
    student: Sequence[torch.Tensor],
    target: Sequence[torch.Tensor],
    routing: torch.Tensor,
    channel_reduction: str = "mean",
) -> torch.Tensor:
    """Eq. 10: (1/|Omega|) sum_k sum_p W_k(p) ||Phi~_k(S(x))_p - F_bar_k(x)_p||_2^2, batch-averaged.

    `student[k]`, `target[k]`: B x C_k x h x w (normalised by sigma_k); `routing`: B x K x h x w.
    `channel_reduction="sum"` is the printed squared L2 norm; `"mean"` divides it by C_k (see
    `DistillLossConfig.mfm_channel_reduction` for why that is the default).
    """
    if channel_reduction not in CHANNEL_REDUCTIONS:
        raise ValueError(f"unknown channel reduction '{channel_reduction}' (known: {', '.join(CHANNEL_REDUCTIONS)})")
    reduce = torch.sum if channel_reduction == "sum" else torch.mean
    squared = torch.stack([reduce((s - t).pow(2), dim=1) for s, t in zip(student, target, strict=True)], dim=1)
    return (routing * squared).sum(dim=1).mean(dim=(-2, -1)).mean()

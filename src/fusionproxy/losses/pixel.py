"""Uncertainty-weighted pixel supervision (paper Eq. 7) and its uniform ablation (Table 4, row g)."""

from __future__ import annotations

import torch


def pixel_weights(variance: torch.Tensor, eps: float = 1e-3, uniform: bool = False) -> torch.Tensor:
    """Eq. 7's w_pix: 1 / (sigma_T^2 + eps), normalised to sum to 1 over each image's pixels.

    `variance` is the ensemble's per-pixel variance (Eq. 5), B x H x W; `uniform` gives every pixel 1 / |Omega|.
    """
    inverse = torch.ones_like(variance) if uniform else 1.0 / (variance + eps)
    return inverse / inverse.sum(dim=(-2, -1), keepdim=True)


def pixel_loss(output: torch.Tensor, mean: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 7: sum_p w_pix(p) * ||S(x)_p - y_bar(x)_p||_1, batch-averaged.

    The L1 norm is over the RGB vector of each pixel, i.e. a sum over the 3 channels.
    """
    per_pixel = (output - mean).abs().sum(dim=1)  # B x H x W
    return (weights * per_pixel).sum(dim=(-2, -1)).mean()

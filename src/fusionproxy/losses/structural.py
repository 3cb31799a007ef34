"""Structural consistency (paper Eq. 11)."""

from __future__ import annotations

import kornia
import torch

SSIM_WINDOW = 11  # Gaussian window of Wang et al. 2004


def ssim_loss(output: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Eq. 11: 1 - SSIM(S(x), y_bar(x)), SSIM averaged over channels, pixels and the batch.

    kornia's `ssim_loss` returns (1 - SSIM) / 2, so the SSIM map is taken from `kornia.metrics` instead.
    """
    return 1.0 - kornia.metrics.ssim(output, mean, SSIM_WINDOW).mean()

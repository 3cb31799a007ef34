"""Beyond both papers: hot targets keep the local contrast they have in the thermal frame.

The ensemble mean carries only part of a hot target's contrast (its TTC is 0.63 on RoadScene test,
docs/results/baselines-and-metrics.md), and a per-pixel L1 student inherits less, so a pedestrian that is the
brightest object of the IR frame fades into its surroundings. This term asks, on the IR frame's hot pixels
only, that the fused luminance stand out from its own local background exactly as much as the IR does from its
background:

    hp(x) = x - G_sigma * x                      (local contrast against a Gaussian background)
    w     = clamp(hp(IR) / threshold, 0, 1)      (soft mask of pixels hotter than their surroundings)
    L     = sum_p w |hp(Y_f) - hp(IR)| / sum_p w (per image; 0 where the IR frame has no hot pixel)

Cold objects and the rest of the frame are left to the other terms, so visible texture is not traded away.
It reads only the two sources and the student's output: no detector or downstream model enters training.
"""

from __future__ import annotations

import kornia
import torch

from .fusion_fidelity import luminance


def local_contrast(gray: torch.Tensor, sigma: float) -> torch.Tensor:
    """x - Gaussian(x) for a B x 1 x H x W image (reflected border, kernel of +-3 sigma clipped to the image)."""
    radius = min(int(3 * sigma), (min(gray.shape[-2:]) - 1) // 2)
    kernel = 2 * radius + 1
    return gray - kornia.filters.gaussian_blur2d(gray, (kernel, kernel), (sigma, sigma), border_type="reflect")


def thermal_contrast_loss(fused: torch.Tensor, ir: torch.Tensor, sigma: float, threshold: float) -> torch.Tensor:
    """Per-image L above for fused RGB (B x 3 x H x W) and IR (B x 1 x H x W) in [0, 1]; shape B."""
    ir_contrast = local_contrast(ir, sigma)
    weight = (ir_contrast / threshold).clamp(0.0, 1.0)
    error = (local_contrast(luminance(fused), sigma) - ir_contrast).abs()
    return (weight * error).flatten(1).sum(dim=1) / weight.flatten(1).sum(dim=1).clamp_min(1.0)

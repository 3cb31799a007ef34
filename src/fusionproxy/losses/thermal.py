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

Two modes (`loss.thermal_mode`):

- `match` (above): every hot pixel's fused contrast equals the IR's, which also copies the IR's structure
  into the target and overwrites its visible texture (a pedestrian's clothes, a car's windows).
- `at_least`: a one-sided floor on each target's pooled contrast,

      m_x   = G_{sigma/2} * (w hp(x)) / G_{sigma/2} * w      (w-weighted local mean over the target)
      L     = sum_p w relu(m_IR - m_Yf) / sum_p w

  so a target must stand out at least as much as in the IR frame on average, and may stand out more, while
  the texture inside it stays free for the visible frame and the teachers.
"""

from __future__ import annotations

import kornia
import torch

from .fusion_fidelity import luminance


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with a reflected border and a kernel of +-3 sigma clipped to the image."""
    radius = min(int(3 * sigma), (min(image.shape[-2:]) - 1) // 2)
    kernel = 2 * radius + 1
    return kornia.filters.gaussian_blur2d(image, (kernel, kernel), (sigma, sigma), border_type="reflect")


def local_contrast(gray: torch.Tensor, sigma: float) -> torch.Tensor:
    """x - Gaussian(x) for a B x 1 x H x W image."""
    return gray - _blur(gray, sigma)


THERMAL_MODES = ("match", "at_least")


def _pooled(values: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """w-weighted Gaussian mean of `values` around each pixel (0 where no weight is near)."""
    return _blur(weight * values, sigma) / _blur(weight, sigma).clamp_min(1e-6)


def thermal_contrast_loss(
    fused: torch.Tensor, ir: torch.Tensor, sigma: float, threshold: float, mode: str = "match"
) -> torch.Tensor:
    """Per-image L above for fused RGB (B x 3 x H x W) and IR (B x 1 x H x W) in [0, 1]; shape B."""
    ir_contrast = local_contrast(ir, sigma)
    weight = (ir_contrast / threshold).clamp(0.0, 1.0)
    fused_contrast = local_contrast(luminance(fused), sigma)
    if mode == "match":
        error = (fused_contrast - ir_contrast).abs()
    elif mode == "at_least":
        error = torch.relu(_pooled(ir_contrast, weight, sigma / 2) - _pooled(fused_contrast, weight, sigma / 2))
    else:
        raise ValueError(f"thermal mode {mode!r} is not one of {', '.join(THERMAL_MODES)}")
    return (weight * error).flatten(1).sum(dim=1) / weight.flatten(1).sum(dim=1).clamp_min(1.0)

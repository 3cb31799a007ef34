"""Source-fidelity terms of DTPF's base fusion loss (DTPF Eq. 12-16), usable by any fused-image trainer.

Each term compares the fused RGB image with the two *sources* rather than with a teacher, which is what
lets a distilled student exceed its teacher (DTPF Sec. IV). Conventions, chosen where DTPF leaves it open:

* the infrared image is single-channel, so intensity, gradient and the infrared SSIM compare luminance:
  Y of the fused image (BT.601, `kornia.color.rgb_to_ycbcr`) against IR and against Y of the visible image;
  chroma is left to the colour term (DTPF Eq. 16), so the two never pull against each other;
* "max" (Eq. 13, 15) is per pixel: the target is whichever source is brighter (resp. has the larger Sobel
  gradient magnitude) at that pixel;
* the Sobel gradient magnitude is |d/dx| + |d/dy| (kornia `spatial_gradient`, unnormalised 3 x 3 Sobel),
  which keeps a finite gradient at flat pixels, unlike the Euclidean norm;
* SSIM uses kornia's Gaussian 11 x 11 window (Wang et al. 2004); DTPF Eq. 14's weight delta_ir on the
  infrared SSIM is the separate `ssim_ir` weight here, so `ssim_ir = lambda_ssim * delta_ir`.

Every term is returned per image (shape B), so a caller can weight items individually (DTPF's per-event,
text-dependent weights) before averaging over the batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import kornia
import torch

SSIM_WINDOW = 11


@dataclass
class FidelityWeights:
    """Weight of each source-fidelity term; a zero weight skips that term's computation."""

    intensity: float = 1.0  # DTPF Eq. 13
    gradient: float = 1.0  # DTPF Eq. 15
    ssim_vis: float = 1.0  # DTPF Eq. 14, visible part
    ssim_ir: float = 1.0  # DTPF Eq. 14, infrared part (lambda_ssim * delta_ir)
    color: float = 1.0  # DTPF Eq. 16

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Y channel (B x 1 x H x W) of an RGB image in [0, 1]."""
    return kornia.color.rgb_to_ycbcr(rgb)[:, :1]


def sobel_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """|Sobel_x| + |Sobel_y| of a B x 1 x H x W image."""
    gradient = kornia.filters.spatial_gradient(gray, mode="sobel", normalized=False)  # B x 1 x 2 x H x W
    return gradient.abs().sum(dim=2)


def _per_image_mean(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).mean(dim=1)


def intensity_term(fused_y: torch.Tensor, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
    """DTPF Eq. 13: mean |Y_f - max(Y_vis, IR)| per image."""
    return _per_image_mean((fused_y - torch.maximum(vis_y, ir)).abs())


def gradient_term(fused_y: torch.Tensor, ir: torch.Tensor, vis_y: torch.Tensor) -> torch.Tensor:
    """DTPF Eq. 15: mean | |grad Y_f| - max(|grad Y_vis|, |grad IR|) | per image."""
    target = torch.maximum(sobel_magnitude(vis_y), sobel_magnitude(ir))
    return _per_image_mean((sobel_magnitude(fused_y) - target).abs())


def ssim_term(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1 - SSIM per image (one part of DTPF Eq. 14)."""
    return 1.0 - _per_image_mean(kornia.metrics.ssim(image, reference, SSIM_WINDOW))


def color_term(fused: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """DTPF Eq. 16: mean |CbCr(f) - CbCr(vis)| per image."""
    fused_cbcr = kornia.color.rgb_to_ycbcr(fused)[:, 1:]
    vis_cbcr = kornia.color.rgb_to_ycbcr(vis)[:, 1:]
    return _per_image_mean((fused_cbcr - vis_cbcr).abs())


def source_fidelity_terms(
    fused: torch.Tensor,
    ir: torch.Tensor,
    vis: torch.Tensor,
    weights: FidelityWeights | None = None,
) -> dict[str, torch.Tensor]:
    """Per-image DTPF base-loss terms of `fused` (B x 3 x H x W) against `ir` (B x 1) and `vis` (B x 3).

    Keys are the `FidelityWeights` field names; with `weights`, terms whose weight is 0 are not computed.
    """
    fused_y, vis_y = luminance(fused), luminance(vis)
    compute = {
        "intensity": lambda: intensity_term(fused_y, ir, vis_y),
        "gradient": lambda: gradient_term(fused_y, ir, vis_y),
        "ssim_vis": lambda: ssim_term(fused, vis),
        "ssim_ir": lambda: ssim_term(fused_y, ir),
        "color": lambda: color_term(fused, vis),
    }
    wanted = weights.to_dict() if weights is not None else dict.fromkeys(compute, 1.0)
    return {name: term() for name, term in compute.items() if wanted[name] != 0}


def weighted_total(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float | torch.Tensor]
) -> torch.Tensor:
    """Batch mean of sum_k weights[k] * terms[k]; a weight may be a float or a per-image (B) tensor.

    Only keys present in both mappings contribute, so callers can pass extra terms (e.g. a consistency
    term) with their own weights through the same function.
    """
    total = sum(weights[name] * value for name, value in terms.items() if name in weights)
    if not isinstance(total, torch.Tensor):
        raise ValueError(f"no weighted term among {sorted(terms)}")
    return total.mean()


def source_fidelity_loss(
    fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, weights: FidelityWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DTPF Eq. 12 with fixed weights (the student's L_base, DTPF Eq. 19): (scalar total, per-image terms)."""
    terms = source_fidelity_terms(fused, ir, vis, weights)
    return weighted_total(terms, weights.to_dict()), terms

"""Complementary masked views of one clean image: the masked-diffusion teacher's training input (Mask-DiFuser).

The image is cut into a grid of patches; a random half of the patches belongs to view A, the other half to
view B. Each view shows its own patches clean. Of the patches a view lacks, a minority carry a degraded copy
of the clean content (one random degradation per sample) and the rest are one constant gray level. Trained
to restore the clean image from (A, B), the network learns to take every region from whichever source shows
it best, which is what fusion asks of it when A is the infrared image and B the visible one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .degradations import random_degradation


@dataclass(frozen=True)
class MaskingConfig:
    """grid: patches per side; degraded_fraction: share of a view's missing patches that carry a degraded copy
    (0.25 by default, a minority as in Mask-DiFuser's masking; 1: no gray patches, so both views are complete
    images as at fusion time, issue 14's mask-ratio measurement); gray: the constant fill level in [0, 1]."""

    grid: int = 8
    degraded_fraction: float = 0.25
    gray: float = 0.5

    def __post_init__(self) -> None:
        if self.grid < 2:
            raise ValueError(f"grid must be at least 2, got {self.grid}")
        if not 0.0 <= self.degraded_fraction <= 1.0:
            raise ValueError(f"degraded_fraction must lie in [0, 1], got {self.degraded_fraction}")


@dataclass
class MaskedViews:
    """The two views (3 x H x W in [0, 1]) and, per grid cell, who owns it and what each view shows there."""

    view_a: torch.Tensor
    view_b: torch.Tensor
    owned_by_a: torch.Tensor  # grid x grid bool: True where the patch is clean in A (and missing in B)
    degraded_a: torch.Tensor  # grid x grid bool: missing in A and filled with the degraded copy
    degraded_b: torch.Tensor
    degradation: str


def patch_index_map(height: int, width: int, grid: int) -> torch.Tensor:
    """H x W map of the grid cell index (row * grid + column) each pixel belongs to; cells differ by <= 1 px."""
    rows = torch.div(torch.arange(height) * grid, height, rounding_mode="floor")
    columns = torch.div(torch.arange(width) * grid, width, rounding_mode="floor")
    return rows[:, None] * grid + columns[None, :]


def _pick_degraded(missing: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A random subset (round(fraction * count)) of the `missing` cells, as a mask over all cells."""
    cells = missing.nonzero().flatten()
    count = round(fraction * len(cells))
    chosen = cells[torch.randperm(len(cells), generator=generator)[:count]]
    mask = torch.zeros_like(missing)
    mask[chosen] = True
    return mask


def make_views(clean: torch.Tensor, generator: torch.Generator, config: MaskingConfig = MaskingConfig()) -> MaskedViews:
    """Split `clean` (3 x H x W in [0, 1]) into two complementary views; all randomness comes from `generator`."""
    cells = config.grid * config.grid
    owned_by_a = torch.zeros(cells, dtype=torch.bool)
    owned_by_a[torch.randperm(cells, generator=generator)[: cells // 2]] = True
    degraded_a = _pick_degraded(~owned_by_a, config.degraded_fraction, generator)
    degraded_b = _pick_degraded(owned_by_a, config.degraded_fraction, generator)
    degraded, name = random_degradation(clean, generator)

    index = patch_index_map(clean.shape[-2], clean.shape[-1], config.grid)
    gray = torch.full_like(clean, config.gray)

    def compose(own: torch.Tensor, with_degraded: torch.Tensor) -> torch.Tensor:
        view = torch.where(with_degraded[index], degraded, gray)
        return torch.where(own[index], clean, view)

    grid_shape = (config.grid, config.grid)
    return MaskedViews(
        view_a=compose(owned_by_a, degraded_a),
        view_b=compose(~owned_by_a, degraded_b),
        owned_by_a=owned_by_a.view(grid_shape),
        degraded_a=degraded_a.view(grid_shape),
        degraded_b=degraded_b.view(grid_shape),
        degradation=name,
    )

"""The view policy: which exact student input each cache item is.

Every training pair gives `crops_per_image` items; item `index = pair_index * crops_per_image + crop`. Each
item is a `crop_size` x `crop_size` window whose top-left corner is drawn uniformly from
`numpy.random.default_rng([seed, index])`, the same window on the IR and the VIS image. A pair whose shorter
side is below `crop_size` is first upscaled bilinearly (aspect ratio kept) so that its shorter side equals
`crop_size`; nothing is padded, so every cached pixel is real image content. The draw depends only on the
seed, the item index and the image size, so any process computes the same window for the same item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io import ir_to_tensor, read_ir, read_vis, vis_to_tensor
from ..errors import FusionProxyError


@dataclass(frozen=True)
class View:
    index: int
    stem: str
    ir_path: Path
    vis_path: Path
    crop: int  # which of the pair's crops


def list_views(pairs: list[tuple[str, Path, Path]], crops_per_image: int) -> list[View]:
    """All items of a pair listing, in item-index order."""
    return [
        View(pair_index * crops_per_image + crop, stem, ir_path, vis_path, crop)
        for pair_index, (stem, ir_path, vis_path) in enumerate(pairs)
        for crop in range(crops_per_image)
    ]


def _upscale_to(image: torch.Tensor, min_side: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    scale = min_side / min(height, width)
    if scale <= 1.0:
        return image
    size = (max(min_side, math.ceil(height * scale)), max(min_side, math.ceil(width * scale)))
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def load_view(view: View, crop_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The item's (ir 1 x 1 x S x S, vis 1 x 3 x S x S) float32 crops in [0, 1], S = crop_size."""
    ir, vis = ir_to_tensor(read_ir(view.ir_path)), vis_to_tensor(read_vis(view.vis_path))
    if ir.shape[-2:] != vis.shape[-2:]:
        raise FusionProxyError(
            f"{view.ir_path}: IR size {tuple(ir.shape[-2:])} differs from {view.vis_path} "
            f"size {tuple(vis.shape[-2:])}; the cache needs aligned pairs"
        )
    ir, vis = _upscale_to(ir, crop_size), _upscale_to(vis, crop_size)
    height, width = ir.shape[-2:]
    rng = np.random.default_rng([seed, view.index])
    top = int(rng.integers(0, height - crop_size + 1))
    left = int(rng.integers(0, width - crop_size + 1))
    window = (..., slice(top, top + crop_size), slice(left, left + crop_size))
    return ir[window].contiguous(), vis[window].contiguous()


def teacher_seed(seed: int, index: int, teacher: int) -> int:
    """The sampling seed of teacher number `teacher` on item `index`: distinct per item and teacher."""
    return int(np.random.default_rng([seed, index, teacher, 1]).integers(0, 2**31 - 1))

"""Test-time misalignment of the IR input (paper Appendix C, Table 6) and the output-stability score.

Every image gets its own warp, drawn from a generator seeded by (run seed, dataset, stem, level), so all methods
see exactly the same perturbed inputs and a rerun draws the same warps in any order.
"""

from __future__ import annotations

import zlib

import kornia
import numpy as np
import torch

from ..errors import FusionProxyError
from ..io import ir_to_tensor
from ..misalignment import MisalignmentRange, misalign

ALIGNED = MisalignmentRange(0.0, 0.0)
# Table 6: aligned, the training range (Eq. 14), twice it, and the "extreme" failure regime.
DEFAULT_LEVELS: tuple[MisalignmentRange, ...] = (
    ALIGNED,
    MisalignmentRange(10.0, 2.0),
    MisalignmentRange(20.0, 5.0),
    MisalignmentRange(30.0, 10.0),
)
SSIM_WINDOW = 11


def parse_levels(text: str) -> tuple[MisalignmentRange, ...]:
    """'10/2,20/5' -> aligned plus +-10 px/+-2 deg and +-20 px/+-5 deg (aligned is always the first level)."""
    levels = [ALIGNED]
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            translation, rotation = (float(value) for value in item.split("/"))
        except ValueError:
            raise FusionProxyError(f"perturbation level '{item}': expected PIXELS/DEGREES, e.g. 10/2") from None
        if translation < 0 or rotation < 0:
            raise FusionProxyError(f"perturbation level '{item}': ranges must be non-negative")
        level = MisalignmentRange(translation, rotation)
        if level not in levels:
            levels.append(level)
    return tuple(levels)


def stable_seed(*parts: object) -> int:
    """A seed that depends only on `parts` (not on Python's per-process string hashing)."""
    return zlib.crc32(":".join(map(str, parts)).encode())


def perturb_ir(ir: np.ndarray, level: MisalignmentRange, seed: int) -> np.ndarray:
    """Warp an H x W IR frame by one random affine of `level` (Eq. 14), drawn from `seed`."""
    if level == ALIGNED:
        return ir
    generator = torch.Generator().manual_seed(seed)
    return misalign(ir_to_tensor(ir), level, generator)[0, 0].numpy()


def ssim_against(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM (kornia.metrics.ssim: 11 x 11 Gaussian window, sigma 1.5, data range 1) over pixels and channels.

    Both are uint8 H x W x 3 images; this is the "SSIM against the aligned output" column of Table 6.
    """

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]

    return float(kornia.metrics.ssim(tensor(image), tensor(reference), SSIM_WINDOW, max_val=1.0).mean())

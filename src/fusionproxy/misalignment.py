"""Random affine misalignment of the IR input (paper Eq. 14, Table 6), shared by training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch


@dataclass(frozen=True)
class MisalignmentRange:
    """Translation uniform in [-max_translation, max_translation] px per axis, rotation in +-max_rotation deg."""

    max_translation: float = 10.0
    max_rotation: float = 2.0

    @property
    def label(self) -> str:
        if self.max_translation == 0 and self.max_rotation == 0:
            return "aligned"
        return f"+-{self.max_translation:g}px/+-{self.max_rotation:g}deg"


def sample_affine(
    batch: int, height: int, width: int, spec: MisalignmentRange, generator: torch.Generator
) -> torch.Tensor:
    """B x 2 x 3 affine matrices (rotation about the image centre, then translation), drawn from `generator`."""
    uniform = torch.rand(batch, 3, generator=generator) * 2.0 - 1.0
    angle = uniform[:, 0] * spec.max_rotation
    translation = uniform[:, 1:] * spec.max_translation
    centre = torch.tensor([[(width - 1) / 2.0, (height - 1) / 2.0]]).expand(batch, 2)
    matrix = kornia.geometry.transform.get_rotation_matrix2d(centre, angle, torch.ones(batch, 2))
    matrix[:, :, 2] += translation
    return matrix


def misalign(ir: torch.Tensor, spec: MisalignmentRange, generator: torch.Generator) -> torch.Tensor:
    """Warp each IR image (B x 1 x H x W) by its own random affine; border pixels are replicated."""
    if spec.max_translation == 0 and spec.max_rotation == 0:
        return ir
    batch, _, height, width = ir.shape
    matrix = sample_affine(batch, height, width, spec, generator).to(ir)
    return kornia.geometry.transform.warp_affine(
        ir, matrix, (height, width), mode="bilinear", padding_mode="border", align_corners=True
    )


@dataclass(frozen=True)
class MisalignmentSchedule:
    """Training-time injection (Eq. 14) with two controls beyond the paper, both measured in
    docs/results/default-model.md.

    A hot target displaced by up to 10 px on a small crop teaches an L1-trained student to smear or drop it, so
    `probability` perturbs only that share of the items (the rest stay aligned) and `ramp_epochs` grows the range
    linearly from 0 to its full size over that many epochs (a curriculum). Defaults are the paper's recipe.
    """

    max_translation: float = 10.0
    max_rotation: float = 2.0
    probability: float = 1.0
    ramp_epochs: int = 0

    def range_at(self, epoch: int) -> MisalignmentRange:
        scale = 1.0 if self.ramp_epochs <= 0 else min(1.0, epoch / self.ramp_epochs)
        return MisalignmentRange(self.max_translation * scale, self.max_rotation * scale)

    def apply(self, ir: torch.Tensor, epoch: int, generator: torch.Generator) -> torch.Tensor:
        """Misalign a B x 1 x H x W batch of IR for `epoch`, drawing everything from `generator`."""
        if self.probability < 1.0 and float(torch.rand((), generator=generator)) >= self.probability:
            return ir
        return misalign(ir, self.range_at(epoch), generator)

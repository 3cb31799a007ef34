"""Validation during distillation: a PNG grid and the student's scores against the ensemble and the sources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import kornia
import numpy as np
import torch
from torch import nn

from ..io import write_image
from .data import IMAGE_KEYS

SOURCE_METRICS = ("VIF", "Qabf")
GRID_DIR = "validation"


def _as_uint8(image: torch.Tensor) -> np.ndarray:
    """C x H x W float in [0, 1] -> H x W x C (or H x W) uint8, as the image would be written to disk."""
    array = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _source_metrics(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> dict[str, float]:
    """VIF and Q^AB/F of the fused image against its sources (CDDFuse/DTPF convention, `fusionproxy.metrics`)."""
    from ..metrics import compute_metrics

    scores = compute_metrics(_as_uint8(fused), _as_uint8(ir), _as_uint8(vis), "cddfuse")
    return {name: scores[name] for name in SOURCE_METRICS}


def uncertainty_spearman(log_variance: torch.Tensor, variance: torch.Tensor) -> float:
    """Spearman rank correlation between the head's per-pixel std and the ensemble's actual std (one item).

    Rank-based, so a head that orders pixels by how much the teachers disagree scores 1 whatever its scale.
    """
    from scipy.stats import spearmanr

    def per_pixel(map_: torch.Tensor) -> np.ndarray:  # C x H x W (channel mean) or H x W -> H*W values
        map_ = map_.detach().float()
        return (map_.mean(dim=0) if map_.ndim == 3 else map_).flatten().cpu().numpy()

    predicted, actual = per_pixel(log_variance), per_pixel(variance)  # exp is monotone: log-variance ranks
    return float(spearmanr(predicted, actual).statistic)


class Validator:
    """Every epoch: a PNG grid (rows IR | VIS | ensemble mean | student), PSNR and SSIM of the student against
    the ensemble mean (the student's distillation fidelity), VIF, Q^AB/F against the sources, and, for a
    student with the uncertainty head, the Spearman correlation of its std with the ensemble's, averaged."""

    def __init__(self, items: Sequence[Mapping[str, torch.Tensor]]) -> None:
        self.items = [{key: torch.as_tensor(item[key]).float() for key in IMAGE_KEYS} for item in items]

    def __call__(self, model: nn.Module, step: int, out_dir: Path) -> dict[str, float]:
        device = next(model.parameters()).device
        rows, scores = [], []
        for item in self.items:
            ir, vis, mean = (item[k][None].to(device) for k in ("ir", "vis", "mean"))
            fused, log_variance = model(ir, vis)
            fused = fused.clamp(0.0, 1.0)
            score = {
                "psnr_mean": float(kornia.metrics.psnr(fused, mean, 1.0)),
                "ssim_mean": float(kornia.metrics.ssim(fused, mean, 11).mean()),
                **_source_metrics(ir[0], vis[0], fused[0]),
            }
            if log_variance is not None:
                score["uncertainty_spearman"] = uncertainty_spearman(log_variance[0], item["var"])
            scores.append(score)
            rows.append(torch.cat([ir.expand(-1, 3, -1, -1), vis, mean, fused], dim=-1)[0])
        width = max(row.shape[-1] for row in rows)  # a --val-cache may use another crop size
        grid = torch.cat([torch.nn.functional.pad(r, (0, width - r.shape[-1])) for r in rows], dim=-2)
        write_image(out_dir / GRID_DIR / f"step-{step:07d}.png", grid.permute(1, 2, 0).cpu().numpy())
        return {name: sum(s[name] for s in scores) / len(scores) for name in scores[0]}

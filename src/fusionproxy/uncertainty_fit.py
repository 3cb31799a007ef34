"""Fitting a trained student's uncertainty head on a teacher-ensemble cache, the rest of the network frozen.

Beyond the paper. The log-variance head reads detached decoder features (and, in its input-aware form, the
sources), so it can be (re)fitted after distillation without changing a single fused pixel: `fusionproxy
distill-head` gives a trained model the input-aware head (`students.blocks.InputAwareUncertaintyHead`) and
trains it alone on the cache's ensemble variance with the `l1_log_var` loss (losses/uncertainty.py). A few
hundred steps take a couple of minutes on a CPU (no panel backbone is involved), so the run is not
checkpointed; it is deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .api import FusionProxy
from .distill import IMAGE_KEYS, mean_log_variance, split_items, start_uncertainty_head, uncertainty_spearman
from .errors import FusionProxyError
from .losses.uncertainty import uncertainty_loss
from .model_dir import WEIGHTS_FILE
from .students import FusionStudent, create_student


@dataclass
class HeadFitConfig:
    steps: int = 300
    hidden: int = 8  # the input-aware head's width
    lr: float = 3e-3
    batch_size: int = 4
    seed: int = 0
    eps: float = 1e-3  # as DistillLossConfig.eps: the target is log(sigma^2 + eps)
    val_items: int = 4  # held out from the end of the cache, as in `distill`


def _batch(items: Dataset, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([torch.as_tensor(items[i][key]).float() for i in indices]) for key in IMAGE_KEYS}


def held_out_spearman(student: FusionStudent, items: Dataset, indices: Sequence[int]) -> float | None:
    """Mean over `indices` of the Spearman correlation of the head's std with the ensemble's (per item);
    None without items."""
    if not indices:
        return None
    scores = []
    with torch.no_grad():
        for i in indices:
            batch = _batch(items, [i])
            log_variance = student.forward_with_uncertainty(batch["ir"], batch["vis"])[1]
            scores.append(uncertainty_spearman(log_variance[0], batch["var"][0]))
    return float(np.mean(scores))


def with_input_aware_head(student: FusionStudent, hidden: int, seed: int) -> FusionStudent:
    """A copy of `student` whose uncertainty head is a fresh input-aware head of width `hidden`."""
    if not hasattr(student.config, "uncertainty_inputs"):
        raise FusionProxyError(f"student {student.name} has no input-aware uncertainty head")
    config = dataclasses.replace(student.config, uncertainty_head=True, uncertainty_hidden=hidden,
                                 uncertainty_inputs=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = create_student(student.name, **config.to_dict())
    trunk = {k: v for k, v in student.state_dict().items() if not k.startswith("log_variance_head.")}
    missing, unexpected = fresh.load_state_dict(trunk, strict=False)
    if unexpected or any(not k.startswith("log_variance_head.") for k in missing):
        raise FusionProxyError(f"student {student.name}: the trunk does not carry over ({missing}, {unexpected})")
    return fresh.eval()


def fit_uncertainty_head(
    student: FusionStudent, items: Dataset, config: HeadFitConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train `student.log_variance_head` alone on `items` (a cache); returns the fit's report.

    Every other parameter is frozen and the network stays in eval mode, so the fused image is unchanged.
    """
    train, held_out = split_items(len(items), config.val_items, has_val_cache=False)
    if len(train) < config.batch_size:
        raise FusionProxyError(f"the cache has {len(train)} training items, fewer than one batch")
    start_uncertainty_head(student, mean_log_variance(items, train, config.eps))
    head = student.log_variance_head
    for parameter in student.parameters():
        parameter.requires_grad_(False)
    for parameter in head.parameters():
        parameter.requires_grad_(True)
    before = held_out_spearman(student, items, held_out)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    losses = []
    for step in range(config.steps):
        picks = torch.randint(len(train), (config.batch_size,), generator=generator).tolist()
        batch = _batch(items, [train[p] for p in picks])
        rgb, log_variance = student.forward_with_uncertainty(batch["ir"], batch["vis"])
        loss = uncertainty_loss(log_variance, rgb, batch["mean"], batch["var"], "l1_log_var", config.eps)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, losses[-1])
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    return {
        "config": dataclasses.asdict(config),
        "train_items": len(train),
        "held_out_items": len(held_out),
        "final_loss": float(np.mean(losses[-20:])),
        "held_out_spearman": held_out_spearman(student, items, held_out),
        "held_out_spearman_fresh_head": before,
    }


def refit_model(
    model_dir: str | Path, cache_dir: str | Path, out_dir: str | Path, config: HeadFitConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """`fusionproxy distill-head`: load a model, give it a fitted input-aware head, save it to `out_dir`."""
    from .cache import CacheDataset

    out_dir = Path(out_dir)
    if (out_dir / WEIGHTS_FILE).exists():
        raise FusionProxyError(f"{out_dir / WEIGHTS_FILE} exists; choose a new --out directory")
    model = FusionProxy.from_pretrained(model_dir)
    student = with_input_aware_head(model.student, config.hidden, config.seed)
    report = fit_uncertainty_head(student, CacheDataset(cache_dir), config, on_step)
    report["cache"] = str(Path(cache_dir).resolve())
    report["model"] = str(Path(model_dir).resolve())
    FusionProxy(student.eval(), dict(model.metadata)).save_pretrained(out_dir, uncertainty_fit=report)
    return report

"""Distilling a student from the cached teacher ensemble (paper Sec. 3.3-3.5): data, validation, run, save.

    fusionproxy distill --cache DIR --student NAME --config cpu|gpu|FILE.yaml --out DIR [--set key=value ...]

The loop itself is the shared `fusionproxy.training.Trainer`; this package supplies the pieces it needs:
`config` (the run's settings), `data` (the cache items with misalignment injection on the student's IR input,
Eq. 14, and the panel that computed their features), `validation` (PNG grid + metrics against the ensemble
mean), `run` (the loss of Eq. 7-12 from `fusionproxy.losses`, the Trainer, the final
`FusionProxy.from_pretrained`-loadable directory) and `diagnostics` (the loss terms' gradient balance).
"""

from __future__ import annotations

from .config import DistillConfig, load_config
from .data import IMAGE_KEYS, DistillDataset, item_keys, open_cache, split_items
from .diagnostics import term_gradient_norms
from .run import (
    StudentWithUncertainty, distill, distill_from_cache, mean_log_variance, start_uncertainty_head,
)
from .validation import Validator, uncertainty_spearman

__all__ = [
    "IMAGE_KEYS", "DistillConfig", "DistillDataset", "StudentWithUncertainty", "Validator", "distill",
    "distill_from_cache", "item_keys", "load_config", "mean_log_variance", "open_cache", "split_items",
    "start_uncertainty_head", "term_gradient_norms", "uncertainty_spearman",
]  # fmt: skip

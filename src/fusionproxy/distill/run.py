"""One distillation run: the student, its loss and validation handed to the shared Trainer, and the saved
`FusionProxy.from_pretrained`-loadable directory."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import FusionProxyError
from ..losses import DistillationLoss
from ..students import FusionStudent, create_student
from ..students.blocks import InputAwareUncertaintyHead
from ..training import Trainer
from .config import DistillConfig
from .data import DistillDataset, item_keys, open_cache, split_items
from .validation import Validator


class StudentWithUncertainty(nn.Module):
    """Wraps the student so that its DDP-wrapped `forward` returns `(rgb, log_variance or None)`."""

    def __init__(self, student: FusionStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.student.forward_with_uncertainty(ir, vis)


def mean_log_variance(items: Dataset, indices: Sequence[int], eps: float) -> float:
    """The mean over the training items' pixels of log(sigma^2 + eps), the uncertainty head's target."""
    return float(np.mean([float(torch.log(torch.as_tensor(items[i]["var"]) + eps).mean()) for i in indices]))


def start_uncertainty_head(student: FusionStudent, log_variance: float) -> None:
    """Start the log-variance head at the training set's mean log-variance (its bias; weights stay small).

    The head reads detached features and moves by about the learning rate per step, so from 0 it would spend
    thousands of steps just reaching the variance's scale (log(1e-3) = -6.9 where the teachers agree).
    """
    head = student.log_variance_head
    # The input-aware head ends in its output conv; the feature read-out in the projection before PixelShuffle.
    output = head.output if isinstance(head, InputAwareUncertaintyHead) else head[-2]
    with torch.no_grad():
        output.bias.fill_(log_variance)


def distill(
    out_dir: str | Path,
    student_name: str,
    config: DistillConfig,
    items: Dataset,
    panel: Mapping[str, nn.Module],
    sigma: Mapping[str, torch.Tensor],
    mean_var: Mapping[str, float],
    val_items: Dataset | None = None,
    provenance: Mapping[str, Any] | None = None,
    notes: Mapping[str, Any] | None = None,
) -> FusionStudent:
    """Train `student_name` on cache `items` with the panel backbones `panel` used for L_MFM; save the result.

    `panel` holds exactly the backbones the loss uses (the cache's, or the `loss.backbones` subset). Writes
    `config.json` + `model.safetensors` (`FusionProxy.from_pretrained`-loadable) beside the Trainer's logs
    and checkpoints in `out_dir`, and returns the trained student. `provenance` (what the run depends on:
    cache and panel identities) must match for a rerun to resume; `notes` (e.g. paths) only go to config.json.
    """
    out_dir = Path(out_dir)
    train_indices, held_out = split_items(len(items), config.val_items, val_items is not None)
    train_config = config.train_config(len(train_indices))
    dataset = DistillDataset(
        items, train_indices, item_keys(list(panel)), config.misalignment, train_config.seed, config.degradation
    )
    if val_items is not None:
        validation = [val_items[i] for i in range(min(config.val_items, len(val_items)))]
    else:
        validation = [items[i] for i in held_out]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)  # the same initial student in every process and every rerun
        student = create_student(student_name, **config.student)
    if config.init_from is not None:
        copied, total = initialise_from(student, config.init_from)
        print(f"init_from {config.init_from}: {copied} of the student's {total} tensors")
    if getattr(student, "log_variance_head", None) is not None:
        start_uncertainty_head(student, mean_log_variance(items, train_indices, config.loss.eps))
    loss = DistillationLoss(config.loss, panel, sigma, mean_var)
    run_info = {
        "student": student_name,
        "student_config": student.config.to_dict(),
        "distill": config.to_dict(),
        **dict(provenance or {}),
    }
    started = time.perf_counter()
    trainer = Trainer(
        out_dir, StudentWithUncertainty(student), dataset, loss, train_config,
        validate=Validator(validation) if validation else None, run_info=run_info,
        run_defaults={"distill": DistillConfig.record_defaults()},
    )
    trained = trainer.train().student

    from accelerate import PartialState

    if PartialState().is_main_process:
        from ..api import FusionProxy

        training = {
            **run_info,
            **dict(notes or {}),
            "train_items": len(train_indices),
            "max_steps": train_config.max_steps,
            "seconds_this_invocation": round(time.perf_counter() - started, 1),
            "torch": torch.__version__,
            "platform": platform.platform(),
        }
        FusionProxy(trained, {"random_init": False}).save_pretrained(out_dir, training=_json_safe(training))
    return trained


def initialise_from(student: FusionStudent, directory: str | Path) -> tuple[int, int]:
    """Copy into `student` every tensor of the model at `directory` with the same name and shape; (copied, total).

    The log-variance head is left as created: `distill-head` refits it, and the distillation starts it from
    the cache's mean variance.
    """
    from ..api import FusionProxy

    source = FusionProxy.from_pretrained(directory).student.state_dict()
    own = student.state_dict()
    matched = {key: value for key, value in source.items()
               if key in own and own[key].shape == value.shape and not key.startswith("log_variance_head.")}
    if not matched:
        raise FusionProxyError(f"init_from {directory}: no tensor of that model fits the student "
                               f"({type(student).__name__}); is it the same architecture family?")
    student.load_state_dict(matched, strict=False)
    return len(matched), len(own)


def _json_safe(value: Any) -> Any:
    """Infinite floats (tau = inf) become the string "inf" so config.json stays strict JSON."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def distill_from_cache(
    cache_dir: str | Path,
    out_dir: str | Path,
    student_name: str,
    config: DistillConfig,
    val_cache: str | Path | None = None,
    weights_dir: str | Path | None = None,
    allow_random_panel: bool = False,
) -> FusionStudent:
    """`fusionproxy distill`: open the cache, rebuild the panel it names, and run `distill`."""
    from ..cache import CacheDataset

    items, panel, provenance = open_cache(cache_dir, config, weights_dir, allow_random_panel)
    names = list(panel)
    val_items = CacheDataset(val_cache) if val_cache is not None else None
    notes = {
        "cache": str(Path(cache_dir).resolve()),
        "val_cache": str(Path(val_cache).resolve()) if val_cache is not None else None,
    }
    return distill(
        out_dir, student_name, config, items, panel,
        {name: items.sigma[name] for name in names}, {name: items.mean_var[name] for name in names},
        val_items=val_items, provenance=provenance, notes=notes,
    )

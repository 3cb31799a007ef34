"""Diagnostics of the loss balance: each term's gradient norm on the student (`fusionproxy distill --grad-norms`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..losses import DistillationLoss
from ..students import FusionStudent, create_student
from .config import DistillConfig
from .data import item_keys


def term_gradient_norms(
    student_name: str, config: DistillConfig, items: Dataset, panel: Mapping[str, nn.Module],
    indices: Sequence[int], student: FusionStudent | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Loss balance: per term (value, gradient norm on the student's parameters, the norm times the term's
    lambda) on one batch of cache items, without misalignment or degradation. Training follows the sum of the
    weighted gradients, so a term whose weighted norm dwarfs the others sets the direction alone. `student`
    (e.g. a trained one, for the balance at the end of a run) replaces the fresh student `distill` starts from.
    """
    if student is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train_config(len(items)).seed)  # the student `distill` would start from
            student = create_student(student_name, **config.student)
    names = list(panel)
    loss = DistillationLoss(config.loss, panel, {k: items.sigma[k] for k in names},
                            {k: items.mean_var[k] for k in names})
    raw = [items[i] for i in indices]
    batch = {key: torch.stack([torch.as_tensor(r[key]).float() for r in raw]) for key in item_keys(names)}
    rgb, log_variance = student.train().forward_with_uncertainty(batch["ir"], batch["vis"])
    lambdas = loss.weights
    parameters = [p for p in student.parameters() if p.requires_grad]
    norms = {}
    for name, value in loss.terms(rgb, log_variance, batch).items():
        grads = torch.autograd.grad(value, parameters, retain_graph=True, allow_unused=True)
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))
        norms[name] = (float(value.detach()), norm, norm * lambdas[name])
    return norms

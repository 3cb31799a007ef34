"""Spatial routing weights over the foundation panel (paper Eq. 8) and the Table 4 routing ablations.

* `adaptive` (row h, default): softmax over backbones of each backbone's feature variance v_k(x, p)
  divided by its training-set mean E_x'[v_bar_k] (+ eps), at temperature tau (Table 7 sweeps tau;
  tau = inf is uniform);
* `uniform` (row e): W_k = 1 / K everywhere;
* `learned` (row f): one learnable logit per backbone, W = softmax(logits) at every pixel, optimised with
  the student.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ROUTING_MODES = ("adaptive", "uniform", "learned")


def adaptive_routing(
    feature_variance: torch.Tensor, mean_variance: torch.Tensor, tau: float = 1.0, eps: float = 1e-3
) -> torch.Tensor:
    """Eq. 8: W_k(x, p) from v_k (B x K x h x w) and E_x'[v_bar_k] (K); returns B x K x h x w summing to 1 over K."""
    if tau <= 0:
        raise ValueError(f"routing temperature tau must be > 0 (use a small value for hard routing), got {tau}")
    if math.isinf(tau):
        return torch.full_like(feature_variance, 1.0 / feature_variance.shape[1])
    normalised = feature_variance / (mean_variance.view(1, -1, 1, 1) + eps)
    return torch.softmax(normalised / tau, dim=1)


class GlobalBackboneWeights(nn.Module):
    """Table 4 row (f): a trainable softmax over K scalars, the same at every pixel and image."""

    def __init__(self, num_backbones: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_backbones))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        """Weights shaped like `like` (B x K x h x w)."""
        return torch.softmax(self.logits, dim=0).view(1, -1, 1, 1).expand_as(like)

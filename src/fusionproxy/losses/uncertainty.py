"""Beyond the paper: teaching the student's optional uncertainty head the ensemble variance.

The cache keeps only the ensemble mean y_bar and the per-pixel variance sigma^2 (Eq. 4-5, averaged over
RGB), not the samples, so two targets are available:

* `l1_log_var` (default): |s - log(sigma^2 + eps)|, where s is the predicted log-variance; its minimiser is
  the ensemble's own log-variance, so the head reports where the teachers disagree.
* `gaussian_nll`: the expected Gaussian negative log-likelihood of the ensemble samples y_n under
  N(S(x), exp(s)), which the mean and variance give exactly:
  E_n[0.5 (s + |y_n - S(x)|^2 / exp(s))] = 0.5 (s + (sigma^2 + mean_c (y_bar - S(x))^2) / exp(s)).
  Its minimiser is sigma^2 plus the student's own squared error, i.e. a confidence map of the student's
  output. S(x) is detached so this term never moves the fused image.
"""

from __future__ import annotations

import torch

UNCERTAINTY_LOSSES = ("l1_log_var", "gaussian_nll")


def uncertainty_loss(
    log_variance: torch.Tensor,
    output: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    kind: str = "l1_log_var",
    eps: float = 1e-3,
) -> torch.Tensor:
    """`log_variance`: B x 1 x H x W head output; `variance`: B x H x W ensemble variance. Scalar, pixel mean."""
    log_variance = log_variance[:, 0]
    if kind == "l1_log_var":
        return (log_variance - torch.log(variance + eps)).abs().mean()
    if kind == "gaussian_nll":
        expected_sq = variance + (mean - output.detach()).pow(2).mean(dim=1)
        return 0.5 * (log_variance + expected_sq / log_variance.exp().clamp_min(eps)).mean()
    raise ValueError(f"unknown uncertainty loss '{kind}' (known: {', '.join(UNCERTAINTY_LOSSES)})")

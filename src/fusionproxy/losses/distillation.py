"""The dual-signal distillation objective (paper Eq. 12) as the Trainer's `loss_fn`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .config import DistillLossConfig
from .fusion_fidelity import source_fidelity_loss
from .mfm import StudentFeatures, mfm_loss
from .pixel import pixel_loss, pixel_weights
from .routing import GlobalBackboneWeights, adaptive_routing
from .structural import ssim_loss
from .thermal import thermal_contrast_loss
from .uncertainty import uncertainty_loss


class DistillationLoss(nn.Module):
    """L = lambda_pix L_pix + lambda_MFM L_MFM + lambda_ssim L_ssim (Eq. 12) [+ fidelity + thermal + uncertainty].

    Called as `loss(model, batch) -> (total, logs)`, where `model(ir, vis)` returns `(rgb, log_variance or
    None)` and `batch` holds the cache keys (`ir`, `vis`, `mean`, `var`, `feat_mean/<k>`, `feat_var/<k>`) plus
    `ir_input`, the student's (possibly misaligned, Eq. 14) infrared input, and optionally `vis_input`, its
    (possibly degraded) visible input; the aligned `ir` and clean `vis` are only targets.
    `panel` maps each backbone name used for L_MFM to its frozen module; `sigma[k]` is its channel-wise
    training-set std and `mean_var[k]` the training-set mean of its spatially averaged variance (Eq. 8).
    The only trainable parameters are the global backbone logits of the `learned` routing ablation.
    """

    def __init__(
        self,
        config: DistillLossConfig,
        panel: Mapping[str, nn.Module],
        sigma: Mapping[str, torch.Tensor],
        mean_var: Mapping[str, float],
    ) -> None:
        super().__init__()
        self.config = config
        self.backbones: Sequence[str] = list(panel)
        self.student_features = StudentFeatures([panel[k] for k in self.backbones], [sigma[k] for k in self.backbones])
        self.register_buffer(
            "mean_var", torch.tensor([float(mean_var[k]) for k in self.backbones]), persistent=False
        )
        self.global_weights = (
            GlobalBackboneWeights(len(self.backbones)) if config.routing == "learned" else None
        )

    def routing_weights(self, feature_variance: torch.Tensor) -> torch.Tensor:
        """W_k(x, p), B x K x h x w, per the configured routing mode."""
        if self.global_weights is not None:
            return self.global_weights(feature_variance)
        tau = float("inf") if self.config.routing == "uniform" else self.config.tau
        return adaptive_routing(feature_variance, self.mean_var, tau, self.config.eps)

    def terms(
        self, rgb: torch.Tensor, log_variance: torch.Tensor | None, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Every active loss term (unweighted), by name."""
        config, mean = self.config, batch["mean"]
        weights = pixel_weights(batch["var"], config.eps, uniform=config.pixel_weighting == "uniform")
        terms = {"pix": pixel_loss(rgb, mean, weights), "ssim": ssim_loss(rgb, mean)}
        if config.lambda_mfm and self.backbones:
            target = [batch[f"feat_mean/{k}"] for k in self.backbones]
            variance = torch.stack([batch[f"feat_var/{k}"] for k in self.backbones], dim=1)
            student = self.student_features(rgb, grid=target[0].shape[-1])
            routing = self.routing_weights(variance)
            terms["mfm"] = mfm_loss(student, target, routing, config.mfm_channel_reduction)
        if config.lambda_fidelity:
            terms["fidelity"] = source_fidelity_loss(rgb, batch["ir"], batch["vis"], config.fidelity)[0]
        if config.lambda_thermal:
            terms["thermal"] = thermal_contrast_loss(
                rgb, batch["ir"], config.thermal_sigma, config.thermal_threshold, config.thermal_mode
            ).mean()
        if log_variance is not None and config.lambda_uncertainty:
            terms["uncertainty"] = uncertainty_loss(
                log_variance, rgb, mean, batch["var"], config.uncertainty_loss, config.eps
            )
        return terms

    @property
    def weights(self) -> dict[str, float]:
        """Each term's lambda, by the names `terms` uses."""
        config = self.config
        return {"pix": config.lambda_pix, "mfm": config.lambda_mfm, "ssim": config.lambda_ssim,
                "fidelity": config.lambda_fidelity, "thermal": config.lambda_thermal,
                "uncertainty": config.lambda_uncertainty}

    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        rgb, log_variance = model(batch["ir_input"], batch.get("vis_input", batch["vis"]))
        terms = self.terms(rgb, log_variance, batch)
        weight = self.weights
        total = sum(weight[name] * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}

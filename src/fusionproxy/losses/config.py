"""`DistillLossConfig`: every weight and switch of the distillation loss (paper Eq. 7-12), YAML-loadable.

Table 4 / Table 7 settings (all other fields at their defaults):

| row | setting |
|-----|---------|
| (a), (b), (c) | chosen by the cache trained on (one teacher with N = 1, one with N = 4, two with N = 4) |
| (d) VGG-only perceptual loss | `backbones: [<the VGG backbone>]`, `routing: uniform` |
| (e) multi-FM, uniform weighting | `routing: uniform` (same as `tau: .inf`) |
| (f) multi-FM, learned global weights | `routing: learned` |
| (g) uniform pixel weights | `pixel_weighting: uniform` |
| (h) full dual-signal | defaults |
| (i)-(l) student backbone | `fusionproxy distill --student NAME` |
| Table 7 | `tau: 0.1 / 0.5 / 1.0 / 2.0 / 5.0 / .inf` |
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config_files import build_config, load_config_as
from ..errors import FusionProxyError
from .fusion_fidelity import FidelityWeights
from .mfm import CHANNEL_REDUCTIONS
from .routing import ROUTING_MODES
from .thermal import THERMAL_MODES
from .uncertainty import UNCERTAINTY_LOSSES

PIXEL_WEIGHTINGS = ("uncertainty", "uniform")


@dataclass
class DistillLossConfig:
    config_noun: ClassVar[str] = "loss option"

    lambda_pix: float = 1.0  # Eq. 12
    lambda_mfm: float = 0.5  # Eq. 12
    lambda_ssim: float = 0.2  # Eq. 12
    eps: float = 1e-3  # Eq. 7 and Eq. 8
    pixel_weighting: str = "uncertainty"  # Eq. 7; "uniform" = Table 4 (g)
    routing: str = "adaptive"  # Eq. 8; "uniform" = (e), "learned" = (f)
    tau: float = 1.0  # Eq. 8 temperature (Table 7); .inf = uniform
    backbones: list[str] | None = None  # panel subset for L_MFM; None = every backbone in the cache
    # Eq. 10's squared distance over the C_k channels: "sum" is the printed ||.||_2^2; "mean" divides by C_k.
    # With "sum", L_MFM is ~10^3 x L_pix (measured: 298 vs 0.13 for an untrained student on RoadScene crops,
    # C_k = 112-384), so the paper's lambdas only balance the terms with the per-channel mean (F.mse_loss).
    mfm_channel_reduction: str = "mean"
    lambda_fidelity: float = 0.0  # beyond the paper: DTPF source-fidelity term, off by default
    fidelity: FidelityWeights = field(default_factory=FidelityWeights)
    lambda_thermal: float = 0.0  # beyond both papers: hot targets' IR contrast (losses/thermal.py), off by default
    thermal_sigma: float = 10.0  # px, the local background's Gaussian
    thermal_threshold: float = 0.1  # IR local contrast at which a pixel counts fully as a hot target
    thermal_mode: str = "match"  # "match": each hot pixel's IR contrast; "at_least": a floor per target
    lambda_uncertainty: float = 0.1  # beyond the paper: used only when the student has the uncertainty head
    uncertainty_loss: str = "l1_log_var"  # or "gaussian_nll" (see losses/uncertainty.py)

    def __post_init__(self) -> None:
        if isinstance(self.fidelity, dict):
            self.fidelity = build_config(FidelityWeights, self.fidelity, "loss.fidelity")
        self.tau = float(self.tau)  # accepts "inf" from the command line
        for name, value, allowed in (
            ("pixel_weighting", self.pixel_weighting, PIXEL_WEIGHTINGS),
            ("routing", self.routing, ROUTING_MODES),
            ("uncertainty_loss", self.uncertainty_loss, UNCERTAINTY_LOSSES),
            ("mfm_channel_reduction", self.mfm_channel_reduction, CHANNEL_REDUCTIONS),
            ("thermal_mode", self.thermal_mode, THERMAL_MODES),
        ):
            if value not in allowed:
                raise FusionProxyError(f"loss.{name}: '{value}' is not one of {', '.join(allowed)}")
        if not (self.tau > 0 or math.isinf(self.tau)):
            raise FusionProxyError(f"loss.tau must be > 0 or .inf, got {self.tau}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DistillLossConfig":
        return build_config(cls, values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DistillLossConfig":
        return load_config_as(cls, str(path), "distill")[0]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


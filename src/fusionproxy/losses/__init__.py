"""The distillation objective of paper Eq. 7-12, one module per term, plus DTPF's source-fidelity terms."""

from .config import DistillLossConfig
from .distillation import DistillationLoss
from .fusion_fidelity import FidelityWeights, source_fidelity_loss, source_fidelity_terms, weighted_total
from .mfm import FEATURE_GRID, StudentFeatures, mfm_loss
from .pixel import pixel_loss, pixel_weights
from .routing import GlobalBackboneWeights, adaptive_routing
from .structural import ssim_loss
from .thermal import local_contrast, thermal_contrast_loss
from .uncertainty import uncertainty_loss

__all__ = [
    "FEATURE_GRID",
    "DistillLossConfig",
    "DistillationLoss",
    "FidelityWeights",
    "GlobalBackboneWeights",
    "StudentFeatures",
    "adaptive_routing",
    "mfm_loss",
    "pixel_loss",
    "pixel_weights",
    "source_fidelity_loss",
    "source_fidelity_terms",
    "local_contrast",
    "ssim_loss",
    "thermal_contrast_loss",
    "uncertainty_loss",
    "weighted_total",
]

"""Compare fusion methods on paired datasets: metrics in two conventions, tables, figures, misalignment study.

`evaluate(datasets, methods, out_dir, ...)` is the Python entry point behind `fusionproxy evaluate`.
"""

from .detection import DetectionSettings
from .methods import Method, default_baselines, parse_method, with_baselines
from .perturb import DEFAULT_LEVELS, parse_levels
from .outputs import Dataset, parse_dataset
from .runner import EvaluationResult, evaluate

__all__ = [
    "DEFAULT_LEVELS",
    "Dataset",
    "DetectionSettings",
    "EvaluationResult",
    "Method",
    "default_baselines",
    "evaluate",
    "parse_dataset",
    "parse_levels",
    "parse_method",
    "with_baselines",
]

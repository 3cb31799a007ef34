"""Registry of no-reference quality scores: NIQE built in, learned ones (MUSIQ, CLIP-IQA, ...) plugged in.

A no-reference metric is a callable `fn(image: np.ndarray) -> float` that takes one uint8 RGB (H x W x 3)
or gray (H x W) image as read from disk and returns a scalar. Register it with whether higher is better:

    register_no_reference_metric("musiq", my_musiq_scorer, higher_is_better=True)

The callable owns its weights (load them once, e.g. in a class's __init__); if they are missing it should
raise `fusionproxy.errors.MissingWeightsError` naming the file, which the evaluation reports per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import FusionProxyError
from .naturalness import niqe


@dataclass(frozen=True)
class NoReferenceMetric:
    name: str
    fn: Callable[[np.ndarray], float]
    higher_is_better: bool


_METRICS: dict[str, NoReferenceMetric] = {}


def register_no_reference_metric(name: str, fn: Callable[[np.ndarray], float], higher_is_better: bool = True) -> None:
    """Add (or replace) the no-reference metric `name`."""
    if not callable(fn):
        raise TypeError(f"no-reference metric {name!r}: {fn!r} is not callable")
    _METRICS[name] = NoReferenceMetric(name, fn, higher_is_better)


def list_no_reference_metrics() -> list[str]:
    return sorted(_METRICS)


def get_no_reference_metric(name: str) -> NoReferenceMetric:
    if name not in _METRICS:
        raise FusionProxyError(
            f"unknown no-reference metric {name!r} (registered: {', '.join(list_no_reference_metrics())})"
        )
    return _METRICS[name]


def score_no_reference(image: np.ndarray, names: list[str]) -> dict[str, float]:
    """{name: score} for the requested registered metrics."""
    return {name: float(get_no_reference_metric(name).fn(image)) for name in names}


register_no_reference_metric("niqe", niqe, higher_is_better=False)

"""Scoring one 8-bit output: the full-reference conventions of `fusionproxy.metrics` plus no-reference scores."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import FusionProxyError, MissingWeightsError
from .report import metric_column

NO_REFERENCE = "noref"  # the pseudo-convention under which no-reference scores (NIQE, plug-ins) are tabulated


class Scorer:
    """`scorer(fused, ir, vis) -> (values, problems)` with values keyed `<convention>:<metric>`.

    `tables` maps each convention (and `noref` when no-reference scores are asked for) to its metric names
    and whether higher is better, which is all the tables and charts need.
    """

    def __init__(self, conventions: Sequence[str], no_reference: Sequence[str] = (), stretch: bool = False) -> None:
        from .. import metrics

        unknown = [c for c in conventions if c not in metrics.METRIC_NAMES]
        if unknown:
            known = ", ".join(metrics.METRIC_NAMES)
            raise FusionProxyError(f"unknown convention(s) {', '.join(unknown)} (known: {known})")
        self.metrics, self.conventions, self.stretch = metrics, list(conventions), stretch
        self.no_reference = [metrics.no_reference.get_no_reference_metric(name) for name in no_reference]
        self.tables: dict[str, tuple[list[str], dict[str, bool]]] = {
            c: (list(metrics.METRIC_NAMES[c]), dict(metrics.HIGHER_IS_BETTER[c])) for c in self.conventions
        }
        if self.no_reference:
            self.tables[NO_REFERENCE] = (
                [m.name for m in self.no_reference], {m.name: m.higher_is_better for m in self.no_reference}
            )

    @property
    def columns(self) -> list[str]:
        return [metric_column(c, name) for c, (names, _) in self.tables.items() for name in names]

    def __call__(self, fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> tuple[dict[str, float], list[str]]:
        if self.stretch:  # CDDFuse min-max stretches each output to [0, 255] before its evaluator runs.
            fused = self.metrics.stretch_to_uint8(fused)
        values: dict[str, float] = {}
        for convention in self.conventions:
            scores = self.metrics.compute_metrics(fused, ir, vis, convention)
            values.update({metric_column(convention, n): float(v) for n, v in scores.items()})
        problems = []
        for metric in self.no_reference:
            try:
                value = float(metric.fn(fused))
            except MissingWeightsError:
                raise  # the same for every image: stop with its message
            except FusionProxyError as error:  # e.g. an image too small for NIQE's patches
                value = math.nan
                problems.append(str(error))
            values[metric_column(NO_REFERENCE, metric.name)] = value
        return values, problems

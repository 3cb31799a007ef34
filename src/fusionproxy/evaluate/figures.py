"""PNG figures: side-by-side comparison grids and bar/line charts of the metrics (matplotlib, no display)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from .report import SSIM_COLUMN, Group, metric_column

LABEL_HEIGHT = 28
GAP = 4


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def comparison_grid(panels: list[tuple[str, np.ndarray]], path: Path) -> int:
    """One row of labelled tiles (IR | VIS | each method) at full resolution, no resampling, so differences in
    detail stay visible. All tiles are uint8 of the same H x W; the PNG is
    (LABEL_HEIGHT + H) x (n W + (n - 1) GAP). Returns the number of panels written."""
    _write_png(_tile_row(panels), path)
    return len(panels)


def stacked_grids(rows: list[list[tuple[str, np.ndarray]]], path: Path) -> None:
    """Rows of labelled tiles as in `comparison_grid` (all tiles of one H x W, the same count per row), one under
    another, GAP apart: e.g. one row per degradation level."""
    tiles = [_tile_row(panels) for panels in rows]
    gap = np.full((GAP, tiles[0].shape[1], 3), 255, np.uint8)
    _write_png(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1]), path)


def _tile_row(panels: list[tuple[str, np.ndarray]]) -> np.ndarray:
    height, width = panels[0][1].shape[:2]
    canvas = np.full((LABEL_HEIGHT + height, len(panels) * (width + GAP) - GAP, 3), 255, np.uint8)
    for index, (label, image) in enumerate(panels):
        if image.shape[:2] != (height, width):
            raise ValueError(f"panel '{label}' is {image.shape[:2]}, expected {(height, width)}")
        left = index * (width + GAP)
        canvas[LABEL_HEIGHT:, left : left + width] = _rgb(image)
        cv2.putText(canvas, label, (left + 4, LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return canvas


def _write_png(canvas: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))


def metrics_chart(
    groups: dict[tuple[str, str, str], Group],
    methods: list[str],
    datasets: list[str],
    convention: str,
    metric_names: list[str],
    higher_is_better: dict[str, bool],
    path: Path,
) -> None:
    """One bar panel per metric: datasets on the x axis, one bar per method (aligned inputs)."""
    columns = min(4, len(metric_names))
    rows = math.ceil(len(metric_names) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    width = 0.8 / max(len(methods), 1)
    positions = np.arange(len(datasets))
    for axis, name in zip(axes, metric_names):
        for index, method in enumerate(methods):
            heights = [
                groups[(method, d, "aligned")].means.get(metric_column(convention, name), math.nan)
                if (method, d, "aligned") in groups else math.nan
                for d in datasets
            ]
            axis.bar(positions + index * width, heights, width, label=method)
        axis.set_title(f"{name} ({'higher' if higher_is_better[name] else 'lower'} is better)", fontsize=9)
        axis.set_xticks(positions + 0.4 - width / 2, datasets, fontsize=8)
    for axis in axes[len(metric_names):]:
        axis.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(methods), 6))
    figure.suptitle(f"Mean metrics, {convention} convention")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def misalignment_chart(
    groups: dict[tuple[str, str, str], Group],
    methods: list[str],
    datasets: list[str],
    perturbations: list[str],
    path: Path,
) -> None:
    """SSIM of each method's output against its aligned output, per perturbation level (Table 6)."""
    figure = Figure(figsize=(5.0 * len(datasets), 3.6), layout="constrained")
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    for axis, dataset in zip(axes, datasets):
        for method in methods:
            values = [
                groups[(method, dataset, p)].means.get(SSIM_COLUMN, math.nan) if (method, dataset, p) in groups
                else math.nan
                for p in perturbations
            ]
            if not all(math.isnan(v) for v in values):
                axis.plot(range(len(perturbations)), values, marker="o", label=method)
        axis.set_xticks(range(len(perturbations)), perturbations, fontsize=8)
        axis.set_ylabel("SSIM vs aligned output")
        axis.set_title(dataset)
        axis.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)

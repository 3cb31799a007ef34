"""`fusionproxy demo`: fuse the sample pairs bundled with the package and draw a comparison figure.

The fused images (and, for a model with the uncertainty head, `<stem>_uncertainty.png`: the predicted
teacher-ensemble standard deviation, 16-bit, std = value / 65535) are written by the ordinary folder job of
`fusionproxy.fuse`; the figure has one row per pair: IR | VIS | fused | uncertainty map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from rich.console import Console

from . import io
from .api import FusionProxy
from .errors import FusionProxyError
from .fuse import FuseOptions, fuse_images, uncertainty_path

SAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "samples"
DEFAULT_OUT = Path("fusionproxy-demo")
FIGURE_NAME = "comparison.png"
UNCERTAINTY_SCALE = 65535.0  # the 16-bit encoding of fuse.uncertainty_image


@dataclass
class DemoResult:
    fused: list[Path]
    uncertainty: list[Path]
    figure: Path
    panels: int  # image panels drawn in the figure (pairs x columns)


def sample_pairs(samples_dir: Path = SAMPLES_DIR) -> list[tuple[str, Path, Path]]:
    """The bundled (stem, IR, VIS) pairs."""
    try:
        pairs = io.find_dataset_pairs(samples_dir).pairs
    except FileNotFoundError as error:
        raise FusionProxyError(f"{samples_dir}: sample pairs missing from the installation ({error})") from None
    if not pairs:
        raise FusionProxyError(f"{samples_dir}: no IR/VIS sample pairs found")
    return pairs


def model_label(fusion: FusionProxy, source: str) -> str:
    if fusion.random_init:
        return f"UNTRAINED random-init {fusion.student_name} (smoke test, not a fusion result)"
    return f"{fusion.student_name} ({source})"


def comparison_figure(
    rows: list[tuple[str, Path, Path, Path, Path | None]], path: Path, title: str
) -> int:
    """One row per pair (stem, IR, VIS, fused, uncertainty or None): IR | VIS | fused [| uncertainty].

    The uncertainty column shows the predicted standard deviation with its own colour bar. Returns the number
    of image panels drawn.
    """
    columns = 4 if any(row[4] is not None for row in rows) else 3
    figure = Figure(figsize=(3.6 * columns, 2.9 * len(rows) + 0.6), layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    panels = 0
    for (stem, ir, vis, fused, uncertainty), row_axes in zip(rows, axes):
        images = [("IR", io.read_ir(ir)), ("VIS", io.read_vis(vis)), ("fused", io.read_vis(fused))]
        for axis, (label, image) in zip(row_axes, images):
            axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
            axis.set_title(f"{stem}: {label}" if label == "IR" else label, fontsize=9)
            panels += 1
        if uncertainty is not None:
            std = io.read_raw(uncertainty).astype(np.float32) / UNCERTAINTY_SCALE
            shown = row_axes[3].imshow(std, cmap="magma", vmin=0.0, vmax=max(float(np.percentile(std, 99)), 1e-6))
            figure.colorbar(shown, ax=row_axes[3], fraction=0.046, pad=0.02)
            row_axes[3].set_title("uncertainty (predicted std)", fontsize=9)
            panels += 1
        for axis in row_axes:
            axis.set_axis_off()
    figure.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return panels


def run_demo(
    fusion: FusionProxy,
    out_dir: str | Path = DEFAULT_OUT,
    source: str = "default",
    samples_dir: Path = SAMPLES_DIR,
    console: Console | None = None,
) -> DemoResult:
    """Fuse every bundled pair into `out_dir` (`<stem>.png`, plus `<stem>_uncertainty.png` when the model has the
    uncertainty head) and write `out_dir/comparison.png`."""
    out_dir = Path(out_dir)
    pairs = sample_pairs(samples_dir)
    options = FuseOptions(uncertainty=fusion.has_uncertainty)
    summary = fuse_images(fusion, samples_dir / "ir", samples_dir / "vi", out_dir, options, console)
    if summary.failed:
        raise FusionProxyError(f"{samples_dir}: {summary.failed} sample pair(s) failed: {'; '.join(summary.errors)}")
    fused = [out_dir / f"{stem}.png" for stem, _, _ in pairs]
    uncertainty = [uncertainty_path(path) for path in fused] if fusion.has_uncertainty else []
    rows = [(stem, ir, vis, out, uncertainty_path(out) if uncertainty else None)
            for (stem, ir, vis), out in zip(pairs, fused)]  # fmt: skip
    figure = out_dir / FIGURE_NAME
    panels = comparison_figure(rows, figure, model_label(fusion, source))
    return DemoResult(fused, uncertainty, figure, panels)

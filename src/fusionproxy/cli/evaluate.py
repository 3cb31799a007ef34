"""`fusionproxy evaluate`: metric tables, comparison grids, charts and the misalignment study."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)


def evaluate_command(
    dataset: list[str] = typer.Option(..., "--dataset", "-d", help="[NAME=]DIR of ir/ and vi/ pairs; repeatable."),
    method: list[str] = typer.Option(
        [], "--method", "-m",
        help="[NAME=]SPEC, repeatable: a student directory (model:DIR), teacher:DIR[:N] (mean of N samples), "
        "a folder of fused images (folder:DIR, matched by stem), baseline:average|max|laplacian, or a source "
        "frame itself as a reference row (source:ir, as 3-channel grey, or source:vis).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder; a rerun resumes it."),
    convention: str = typer.Option("vifb,cddfuse", help="Metric conventions, comma-separated."),
    no_reference: str = typer.Option(
        "", help="No-reference scores, comma-separated: niqe, or plug-ins registered in fusionproxy.metrics."
    ),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Add the classical baselines."),
    stretch: bool = typer.Option(False, help="Min-max stretch each output to [0, 255] before scoring (CDDFuse)."),
    perturb: bool = typer.Option(False, help="Also evaluate with misaligned IR inputs (paper Table 6)."),
    perturb_levels: Optional[str] = typer.Option(
        None, help="PIXELS/DEGREES levels, e.g. '10/2,20/5,30/10' (the default; implies --perturb)."
    ),
    grid: Optional[str] = typer.Option(None, help="Stems for comparison grids, comma-separated; 'none' for none."),
    seed: int = typer.Option(0, help="Seeds teacher sampling and perturbations (per image)."),
    rescore: bool = typer.Option(False, help="Re-score cached outputs (keeps the old CSV as results.previous.csv)."),
    detector: Optional[Path] = typer.Option(
        None, help="Frozen detector (ONNX) to compare what it finds in visible, IR and fused frames as the visible "
        "frame degrades; tables in summary.md, scores in detection.csv."
    ),
    detector_format: str = typer.Option("auto", help="Detector output format (registered: yolox); auto: detected."),
    detector_levels: str = typer.Option("all", help="Visibility levels of the detection study, comma-separated."),
    slow_levels: Optional[str] = typer.Option(
        None, help="Levels for teachers and means of teachers in the detection study (default: all of "
        "--detector-levels), e.g. 'none,night-0.05,fog-0.1'."
    ),
    device: str = typer.Option("cpu", "--device", help="Where student models run: auto, cpu, cuda[:N] or mps."),
) -> None:
    """Compare fusion methods on paired datasets: per-image CSV, Markdown tables, grids and charts."""
    from rich.console import Console

    from ..devices import resolve_device
    from ..evaluate import DEFAULT_LEVELS, evaluate, parse_levels, parse_method, with_baselines
    from ..evaluate.methods import ModelMethod

    resolve_device(device)  # an absent device is a set-up error, before any work
    methods = [parse_method(text) for text in method]
    for entry in methods:
        if isinstance(entry, ModelMethod):
            entry.device = device
    if baselines:
        methods = with_baselines(methods)
    if not methods:
        raise typer.BadParameter("no methods: give --method or keep the baselines", param_hint="--method")
    levels = None
    if perturb_levels is not None:
        levels = parse_levels(perturb_levels)
    elif perturb:
        levels = DEFAULT_LEVELS
    stems = None if grid is None else [] if grid == "none" else _items(grid)
    detection = None
    if detector is not None:
        from ..detection import load_detector
        from ..evaluate.detection import DetectionSettings
        from ..visibility import parse_levels as parse_visibility

        detection = DetectionSettings(
            load_detector(detector, detector_format), detector.name, tuple(parse_visibility(detector_levels)),
            None if slow_levels is None else tuple(parse_visibility(slow_levels)),
        )

    console = Console(stderr=True, soft_wrap=True)  # one line per message, however long the paths
    result = evaluate(
        dataset, methods, out, conventions=_items(convention), no_reference=_items(no_reference),
        stretch=stretch, perturbations=levels, seed=seed, grid=stems, rescore=rescore, console=console,
        detection=detection,
    )
    console.print(f"{len(result.rows)} scored rows; tables in {out / 'summary.md'}, per-image scores in "
                  f"{out / 'results.csv'}", highlight=False)
    if detection is not None:
        console.print(f"detection tables in {out / 'summary.md'}, scores in {out / 'detection.csv'}", highlight=False)
    if result.failures:
        console.print(f"[bold red]{len(result.failures)} input(s) could not be scored[/] (listed above and in "
                      f"{out / 'summary.md'})", highlight=False)
        raise typer.Exit(1)


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]

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
        "a folder of fused images (folder:DIR, matched by stem), or baseline:average|max|laplacian.",
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
) -> None:
    """Compare fusion methods on paired datasets: per-image CSV, Markdown tables, grids and charts."""
    from rich.console import Console

    from ..evaluate import DEFAULT_LEVELS, default_baselines, evaluate, parse_levels, parse_method

    methods = [parse_method(text) for text in method]
    if baselines:
        specs = {m.spec for m in methods}
        methods += [b for b in default_baselines() if b.spec not in specs]
    if not methods:
        raise typer.BadParameter("no methods: give --method or keep the baselines", param_hint="--method")
    levels = None
    if perturb_levels is not None:
        levels = parse_levels(perturb_levels)
    elif perturb:
        levels = DEFAULT_LEVELS
    stems = None if grid is None else [] if grid == "none" else _items(grid)

    console = Console(stderr=True, soft_wrap=True)  # one line per message, however long the paths
    result = evaluate(
        dataset, methods, out, conventions=_items(convention), no_reference=_items(no_reference),
        stretch=stretch, perturbations=levels, seed=seed, grid=stems, rescore=rescore, console=console,
    )
    console.print(f"{len(result.rows)} scored rows; tables in {out / 'summary.md'}, per-image scores in "
                  f"{out / 'results.csv'}", highlight=False)
    if result.failures:
        console.print(f"[bold red]{len(result.failures)} input(s) could not be scored[/] (listed above and in "
                      f"{out / 'summary.md'})", highlight=False)
        raise typer.Exit(1)


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]

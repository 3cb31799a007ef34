"""`fusionproxy pipeline`: teachers -> cache -> distillation -> evaluation -> benchmark, resumable."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

STAGE_NAMES = "weights, prior, masked, cache, distill, evaluate, bench"


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline_command)


def pipeline_command(
    config: str = typer.Option(..., "--config", "-c", help="Bundled config (cpu, gpu, smoke) or a YAML file."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config value, e.g. --set distill.student=mobile_unet; repeatable."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory; rerunning the command resumes it."),
    start: Optional[str] = typer.Option(
        None, "--from", help=f"Run this stage and all later ones again, even if finished ({STAGE_NAMES})."
    ),
    until: Optional[str] = typer.Option(None, "--until", help="Stop after this stage."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print every stage's commands and run nothing."),
) -> None:
    """Train both teachers, build the cache, distil, evaluate and benchmark the default student from scratch.

    Each stage runs the package's own commands (printed as it starts); finished stages and their wall times are
    recorded in OUT/pipeline_state.json, so rerunning the same command skips them and resumes the rest.
    """
    from ..workflows.pipeline import run_pipeline
    from ..workflows.pipeline_config import load_config
    from ..workflows.pipeline_plan import plan
    from ..workflows.steps import format_command

    console = Console(stderr=True, soft_wrap=True)
    pipeline_config = load_config(config, overrides)
    if dry_run:
        for stage in plan(pipeline_config, out):
            console.print(f"[bold]{stage.name}[/]: {stage.what}", highlight=False)
            for command in stage.commands or []:
                console.print(f"  {format_command(command)}", highlight=False, markup=False)
        return
    began = time.perf_counter()
    runner = run_subprocess if pipeline_config.isolate else None  # None: the steps' library calls, in this process
    reports = run_pipeline(pipeline_config, out, start, until, runner,
                           log=lambda line: console.print(line, highlight=False, markup=False))  # fmt: skip
    wall = time.perf_counter() - began

    table = Table(title=f"pipeline {pipeline_config.source} -> {out}")
    for header in ("stage", "status", "this run s", "all runs s"):
        table.add_column(header, justify="left" if header in ("stage", "status") else "right")
    for report in reports:
        table.add_row(report.name, report.status, f"{report.seconds:.1f}", f"{report.total_seconds:.1f}")
    table.add_row("total", "", f"{sum(r.seconds for r in reports):.1f}", f"{sum(r.total_seconds for r in reports):.1f}")
    Console(soft_wrap=True).print(table)
    console.print(f"wall time of this invocation: {wall:.1f} s; stage times saved in {out / 'pipeline_state.json'}",
                  highlight=False)  # fmt: skip


def run_subprocess(command: list[str]) -> None:
    """Run a `fusionproxy` command in a fresh Python process of the same interpreter (the pipeline's runner
    for `isolate: true`)."""
    from ..errors import FusionProxyError
    from ..workflows.steps import format_command

    code = subprocess.run([sys.executable, "-m", "fusionproxy", *command], check=False).returncode
    if code != 0:
        raise FusionProxyError(f"{format_command(command)}: exited with status {code}")

"""`fusionproxy dtpf ...`: DTPF's text-guided teacher, its distillation, and the event labels (docs/guides/dtpf.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

dtpf_app = typer.Typer(help="DTPF: train the text-guided teacher and distil it into dtpf_student.", no_args_is_help=True)

LABELS_HELP = "CSV (stem,event) or JSON {stem: event} of event labels; stems it lacks are estimated."
SET_HELP = "Override a config value, e.g. --set train.max_steps=100 --set crop=64; repeatable."


def register(app: typer.Typer) -> None:
    app.add_typer(dtpf_app, name="dtpf")


@dtpf_app.command("train-teacher")
def train_teacher_command(
    data: Path = typer.Option(..., "--data", help="Training pairs: a folder with ir/ and vi/."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory; rerunning the command resumes it."),
    config: str = typer.Option("cpu", "--config", "-c", help="Bundled config (cpu, gpu) or a YAML file."),
    labels: Optional[Path] = typer.Option(None, "--labels", help=LABELS_HELP),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Stage 1: train the text-guided DTPF teacher (Eq. 12-16); OUT then holds the teacher's weights."""
    from ..dtpf.train import DTPFRecipe, train_teacher

    train_teacher(data, out, DTPFRecipe.load(config, "teacher", overrides), labels)
    typer.echo(f"trained the DTPF teacher: {out}")


@dtpf_app.command("distill")
def distill_command(
    teacher: Path = typer.Option(..., "--teacher", help="Directory written by `fusionproxy dtpf train-teacher`."),
    data: Path = typer.Option(..., "--data", help="Training pairs: a folder with ir/ and vi/."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory; rerunning the command resumes it."),
    config: str = typer.Option("cpu", "--config", "-c", help="Bundled config (cpu, gpu) or a YAML file."),
    labels: Optional[Path] = typer.Option(None, "--labels", help=LABELS_HELP),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Stage 2: distil the teacher into dtpf_student (Eq. 17-19); OUT is a FusionProxy model directory."""
    from ..dtpf.train import DTPFRecipe, distill

    distill(teacher, data, out, DTPFRecipe.load(config, "distill", overrides), labels)
    typer.echo(f"trained dtpf_student: {out}")


@dtpf_app.command("label")
def label_command(
    data: Path = typer.Option(..., "--data", help="Pairs: a folder with ir/ and vi/."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write (stem,event,source)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help=LABELS_HELP),
) -> None:
    """Write each pair's event type (from --labels, else the degradation estimator) and print the counts."""
    from collections import Counter

    from ..dtpf.data import resolve_events, training_pairs, write_events
    from ..errors import FusionProxyError

    if out.exists() and out.is_dir():
        raise FusionProxyError(f"{out}: is a directory; give a CSV file path")
    pairs = training_pairs(data)
    events, sources = resolve_events(pairs, labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_events(out, pairs, events, sources)
    counts = ", ".join(f"{event} {n}" for event, n in Counter(events).most_common())
    typer.echo(f"{len(pairs)} pairs -> {out}: {counts}")

"""`fusionproxy demo`: fuse the bundled sample pairs with the default model and draw a comparison figure."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    model: Optional[str] = typer.Option(None, "--model", help="Trained model directory (default: the bundled model)."),
    random_init: Optional[str] = typer.Option(
        None, "--random-init", metavar="STUDENT", help="Untrained student, for smoke tests only."
    ),
    seed: int = typer.Option(0, help="Seed of --random-init."),
    out: Path = typer.Option(Path("fusionproxy-demo"), "--out", "-o", help="Output folder."),
) -> None:
    """Fuse the bundled IR/VIS sample pairs into OUT and write OUT/comparison.png (IR | VIS | fused | uncertainty)."""
    from ..demo import run_demo
    from .fuse import load_model

    console = Console(stderr=True, soft_wrap=True)
    fusion = load_model(model, random_init, seed, console)
    source = model or (f"random-init seed {seed}" if random_init else "bundled default model")
    result = run_demo(fusion, out, source=source, console=console)
    console.print(f"{len(result.fused)} fused pairs in {out}; comparison figure ({result.panels} panels): "
                  f"{result.figure}", highlight=False)  # fmt: skip

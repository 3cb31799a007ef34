"""`fusionproxy distill`: train a student on a teacher-ensemble cache (paper Sec. 3.3-3.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)


def distill_command(
    cache: Path = typer.Option(..., "--cache", help="Teacher-ensemble cache directory (fusionproxy cache build)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory; rerunning the command resumes it."),
    student: str = typer.Option("convnext_unet", "--student", help="Student architecture (Table 4, block C)."),
    config: str = typer.Option("cpu", "--config", "-c", help="Bundled config (cpu, gpu) or a YAML file."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config value, e.g. --set loss.tau=0.5 --set train.max_steps=100; repeatable."
    ),
    val_cache: Optional[Path] = typer.Option(
        None, "--val-cache", help="Cache of held-out pairs for validation (default: hold out the cache's last items)."
    ),
    weights_dir: Optional[Path] = typer.Option(
        None, "--weights-dir", help="Backbone weights root (default: $FUSIONPROXY_HOME/weights)."
    ),
    allow_random_panel: bool = typer.Option(
        False, "--allow-random-panel", help="Accept a cache built with a random-init panel (tests only)."
    ),
) -> None:
    """Distil STUDENT from the cached teacher ensemble; writes a FusionProxy.from_pretrained-loadable OUT."""
    from ..distill import distill_from_cache, load_config

    distill_from_cache(
        cache, out, student, load_config(config, overrides),
        val_cache=val_cache, weights_dir=weights_dir, allow_random_panel=allow_random_panel,
    )
    typer.echo(f"trained {student}: {out}")

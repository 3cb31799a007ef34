"""`fusionproxy distill`: train a student on a teacher-ensemble cache (paper Sec. 3.3-3.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)
    app.command("distill-head")(distill_head_command)


def distill_command(
    cache: Path = typer.Option(..., "--cache", help="Teacher-ensemble cache directory (fusionproxy cache build)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output directory (required to train); rerunning the command resumes it."),
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
    grad_norms: Optional[str] = typer.Option(
        None, "--grad-norms", help="Train nothing: print each loss term's value and gradient norm on the fresh "
        "student for these cache items (comma-separated indices, one batch), to check the lambdas' balance."
    ),
    grad_norms_model: Optional[Path] = typer.Option(
        None, "--grad-norms-model", help="With --grad-norms: measure on this trained student directory instead "
        "of the fresh student (the balance at the end of a run)."
    ),
) -> None:
    """Distil STUDENT from the cached teacher ensemble; writes a FusionProxy.from_pretrained-loadable OUT."""
    from ..distill import distill_from_cache, load_config, open_cache, term_gradient_norms
    from ..errors import FusionProxyError

    distill_config = load_config(config, overrides)
    if grad_norms is not None:
        try:
            indices = [int(i) for i in grad_norms.split(",") if i.strip()]
        except ValueError:
            raise FusionProxyError(f"--grad-norms: '{grad_norms}' is not a list of item indices") from None
        items, panel, _ = open_cache(cache, distill_config, weights_dir, allow_random_panel)
        if not indices or not all(0 <= i < len(items) for i in indices):
            raise FusionProxyError(f"--grad-norms: indices must lie in 0..{len(items) - 1}")
        trained = None
        if grad_norms_model is not None:
            from ..api import FusionProxy

            trained = FusionProxy.from_pretrained(grad_norms_model).student
        typer.echo(f"{'term':<12} {'value':>10} {'grad norm':>10} {'x lambda':>10}")
        for name, (value, norm, weighted) in term_gradient_norms(
                student, distill_config, items, panel, indices, trained).items():
            typer.echo(f"{name:<12} {value:>10.4g} {norm:>10.4g} {weighted:>10.4g}")
        return
    if out is None:
        raise FusionProxyError("distill: --out DIR is required (where the student and its checkpoints go)")
    distill_from_cache(
        cache, out, student, distill_config,
        val_cache=val_cache, weights_dir=weights_dir, allow_random_panel=allow_random_panel,
    )
    typer.echo(f"trained {student}: {out}")


def distill_head_command(
    model: Path = typer.Option(..., "--model", "-m", help="Trained model directory (fusionproxy distill)."),
    cache: Path = typer.Option(..., "--cache", help="Teacher-ensemble cache whose variance the head learns."),
    out: Path = typer.Option(..., "--out", "-o", help="New model directory (must not hold a model yet)."),
    steps: int = typer.Option(300, "--steps", help="Head-only training steps."),
    hidden: int = typer.Option(8, "--hidden", help="Width of the input-aware head."),
    lr: float = typer.Option(3e-3, "--lr", help="AdamW learning rate of the head."),
    seed: int = typer.Option(0, "--seed", help="Seeds the head's initialisation and the batches."),
) -> None:
    """Give a trained model the input-aware uncertainty head, fitted alone on the cache's ensemble variance
    (the fused image stays bit-identical); prints the held-out Spearman correlation with the ensemble's std."""
    from rich.progress import Progress

    from ..uncertainty_fit import HeadFitConfig, refit_model

    config = HeadFitConfig(steps=steps, hidden=hidden, lr=lr, seed=seed)
    with Progress(transient=True) as progress:
        task = progress.add_task("fitting the uncertainty head", total=steps)
        report = refit_model(model, cache, out, config, on_step=lambda step, loss: progress.update(task, completed=step))
    spearman = report["held_out_spearman"]
    typer.echo(f"uncertainty head fitted: {out} (final loss {report['final_loss']:.3f}, held-out Spearman "
               f"{'n/a' if spearman is None else f'{spearman:.3f}'} over {report['held_out_items']} items)")

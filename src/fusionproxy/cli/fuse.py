"""`fusionproxy fuse`: fuse a pair, two folders of pairs, or two videos with a trained student."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from ..errors import FusionProxyError

if TYPE_CHECKING:
    from ..api import FusionProxy
    from ..io import PercentileStretch


class BackendChoice(str, Enum):
    eager = "eager"
    onnxruntime = "onnxruntime"


def parse_stretch(text: str | None) -> PercentileStretch | None:
    """'LOW,HIGH' percentiles -> PercentileStretch; None -> the default (1, 99)."""
    from ..io import PercentileStretch

    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise FusionProxyError(f"--ir-stretch '{text}': expected two percentiles LOW,HIGH such as 1,99") from None
    if not 0.0 <= low < high <= 100.0:
        raise FusionProxyError(f"--ir-stretch '{text}': need 0 <= LOW < HIGH <= 100")
    return PercentileStretch(low, high)


def load_model(model: str | None, random_init: str | None, seed: int, console: Console) -> FusionProxy:
    """The model to run: a directory, a random-init student (smoke tests; says so loudly), or the default."""
    from ..api import FusionProxy

    if model is not None and random_init is not None:
        raise FusionProxyError("give either --model DIR or --random-init STUDENT, not both")
    if random_init is not None:
        try:
            fusion = FusionProxy.from_student(random_init, seed=seed)
        except KeyError as error:
            raise FusionProxyError(f"--random-init: {error.args[0]}") from None
        console.print(
            f"[bold red]WARNING: --random-init {random_init}: the output comes from an UNTRAINED network with "
            f"random weights (seed {seed}). Use it for smoke tests only; it is not a fusion result.[/]",
            highlight=False,
        )
        return fusion
    return FusionProxy.from_pretrained(model if model is not None else "default")


def register(app: typer.Typer) -> None:
    @app.command()
    def fuse(
        ir: Path = typer.Option(..., "--ir", help="IR image, folder of IR images, or IR video."),
        vis: Path = typer.Option(..., "--vis", help="VIS image, folder of VIS images (matched by stem), or VIS video."),
        output: Path = typer.Option(..., "-o", "--output", help="Output file (pair / video) or folder."),
        model: Optional[str] = typer.Option(
            None, "--model", help="Trained model directory (config.json + model.safetensors)."
        ),
        random_init: Optional[str] = typer.Option(
            None, "--random-init", metavar="STUDENT", help="Untrained student, for smoke tests only."
        ),
        seed: int = typer.Option(0, help="Seed of --random-init."),
        batch_size: int = typer.Option(4, "--batch-size", min=1, help="Pairs (or frames) of equal size run together."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for inference."),
        resume: bool = typer.Option(False, "--resume", help="Skip outputs that already exist."),
        backend: BackendChoice = typer.Option(BackendChoice.eager, "--backend"),
        onnx: Optional[Path] = typer.Option(
            None, "--onnx", help="ONNX file for --backend onnxruntime (exported on the fly if omitted)."
        ),
        resize_ir: bool = typer.Option(False, "--resize-ir", help="Resample IR onto the VIS grid when sizes differ."),
        ir_stretch: Optional[str] = typer.Option(
            None, "--ir-stretch", metavar="LOW,HIGH", help="Percentiles mapped to 0 and 1 for 16-bit IR (default 1,99)."
        ),
        uncertainty: bool = typer.Option(
            False, "--uncertainty", help="Also write <stem>_uncertainty.png (16-bit std = value/65535)."
        ),
    ) -> None:
        """Fuse IR + VIS: one pair, two folders matched by file stem, or two videos frame by frame."""
        import torch

        from ..fuse import FuseOptions, run_fuse

        console = Console(stderr=True, soft_wrap=True)
        if onnx is not None and backend is not BackendChoice.onnxruntime:
            raise FusionProxyError(f"{onnx}: --onnx is used with --backend onnxruntime")
        if threads:
            torch.set_num_threads(threads)
        options = FuseOptions(
            batch_size=batch_size, resume=resume, resize_ir=resize_ir, uncertainty=uncertainty,
            ir_stretch=parse_stretch(ir_stretch), backend=backend.value, onnx_path=onnx, threads=threads,
        )
        fusion = load_model(model, random_init, seed, console)
        if uncertainty and not fusion.has_uncertainty:
            raise FusionProxyError(f"{model or random_init}: this model has no uncertainty head; drop --uncertainty")
        summary = run_fuse(fusion, ir, vis, output, options, console)
        label = " (UNTRAINED random-init network)" if fusion.random_init else ""
        console.print(f"fuse{label}: {summary.line()} -> {output}", highlight=False)
        if summary.failed:
            raise typer.Exit(code=1)

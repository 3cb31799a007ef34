"""`fusionproxy fuse`: fuse a pair, two folders of pairs, or two streams (videos, cameras, URLs, frame folders)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from ..errors import FusionProxyError

if TYPE_CHECKING:
    from ..api import FusionProxy
    from ..io import PercentileStretch, Stretch

DEVICE_HELP = "auto (cuda, else mps, else cpu), cpu, cuda[:N] or mps; asking for one that is absent is an error."


class BackendChoice(str, Enum):
    eager = "eager"
    onnxruntime = "onnxruntime"
    onnxruntime_int8 = "onnxruntime-int8"


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


def ir_gain(stretch: str | None, agc_ema: float | None, ir_range: str | None) -> Stretch | None:
    """What maps 16-bit IR to [0, 1]: --ir-range (fixed), --agc-ema (temporal), or the --ir-stretch percentiles."""
    from ..agc import TemporalAgc, parse_range

    if ir_range is not None and (agc_ema is not None or stretch is not None):
        raise FusionProxyError("--ir-range is a fixed gain; it does not combine with --agc-ema or --ir-stretch")
    if ir_range is not None:
        return parse_range(ir_range)
    if agc_ema is not None:
        return TemporalAgc(agc_ema, parse_stretch(stretch))
    return parse_stretch(stretch)


def load_model(
    model: str | None, random_init: str | None, seed: int, console: Console, device: str = "cpu", half: bool = False
) -> FusionProxy:
    """The model to run: a directory, a random-init student (smoke tests; says so loudly), or the default."""
    from ..api import FusionProxy
    from ..devices import check_half, resolve_device

    check_half(resolve_device(device), half)  # before loading: a wrong device is a set-up error
    if model is not None and random_init is not None:
        raise FusionProxyError("give either --model DIR or --random-init STUDENT, not both")
    if random_init is not None:
        try:
            fusion = FusionProxy.from_student(random_init, seed=seed)
        except KeyError as error:
            raise FusionProxyError(f"--random-init: {error.args[0]}") from None
        fusion.to_device(device, half)
        console.print(
            f"[bold red]WARNING: --random-init {random_init}: the output comes from an UNTRAINED network with "
            f"random weights (seed {seed}). Use it for smoke tests only; it is not a fusion result.[/]",
            highlight=False,
        )
        return fusion
    return FusionProxy.from_pretrained(model if model is not None else "default", device, half)


def register(app: typer.Typer) -> None:
    @app.command()
    def fuse(
        ir: str = typer.Option(
            ..., "--ir", help="IR image, folder of images, video, camera index, URL, GStreamer pipeline, or (with "
            "--sequence) folder of numbered frames."),
        vis: str = typer.Option(..., "--vis", help="VIS counterpart of --ir (folders of images: matched by stem)."),
        output: Optional[Path] = typer.Option(
            None, "-o", "--output", help="Output file (pair / video) or folder; optional with --show."),
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
            None, "--onnx", help="ONNX file for --backend onnxruntime (exported on the fly if omitted) or "
            "onnxruntime-int8 (default: model-int8.onnx in the model directory, from `fusionproxy export --int8`)."
        ),
        resize_ir: bool = typer.Option(False, "--resize-ir", help="Resample IR onto the VIS grid when sizes differ."),
        ir_stretch: Optional[str] = typer.Option(
            None, "--ir-stretch", metavar="LOW,HIGH", help="Percentiles mapped to 0 and 1 for 16-bit IR (default 1,99)."
        ),
        uncertainty: bool = typer.Option(
            False, "--uncertainty", help="Also write <stem>_uncertainty.png (16-bit std = value/65535)."
        ),
        nan_to: Optional[float] = typer.Option(
            None, "--nan-to", metavar="VALUE", help="Replace NaN/inf in float inputs by VALUE (default: reject)."),
        ir_homography: Optional[Path] = typer.Option(
            None, "--ir-homography", metavar="FILE", help="3x3 (or 2x3 affine) IR -> VIS matrix, e.g. from "
            "`fusionproxy calibrate`; IR is warped onto the VIS grid."),
        agc_ema: Optional[float] = typer.Option(
            None, "--agc-ema", metavar="EMA", help="16-bit IR video: temporal gain, the stretch limits averaged "
            "over frames with this weight of the past (0.9: about 10 frames)."),
        ir_range: Optional[str] = typer.Option(
            None, "--ir-range", metavar="LOW,HIGH", help="16-bit IR: fixed gain, raw counts LOW -> 0, HIGH -> 1."),
        sequence: bool = typer.Option(False, "--sequence", help="--ir/--vis are folders of numbered frames."),
        fps: Optional[float] = typer.Option(
            None, "--fps", min=0.001, help="Frame rate of --sequence folders (default 25; timestamp = number / fps)."),
        max_skew: Optional[float] = typer.Option(
            None, "--max-skew", metavar="MS", min=0.0, help="Streams: pair frames at most MS apart (default: half "
            "the slower source's frame period)."),
        reconnect: int = typer.Option(0, "--reconnect", min=0, help="Streams: reopen a dropped source N times."),
        frames: bool = typer.Option(False, "--frames", help="Streams: write numbered PNGs into the -o folder."),
        show: bool = typer.Option(False, "--show", help="Streams: show the fused frames in a window (q/Esc stops)."),
        device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
        half: bool = typer.Option(False, "--half", help="fp16 inference (CUDA only)."),
    ) -> None:
        """Fuse IR + VIS: one pair, two folders matched by file stem, or two streams paired by timestamp."""
        import torch

        from ..fuse import FuseOptions, run_fuse
        from ..registration import load_homography

        console = Console(stderr=True, soft_wrap=True)
        if onnx is not None and backend is BackendChoice.eager:
            raise FusionProxyError(f"{onnx}: --onnx is used with --backend onnxruntime or onnxruntime-int8")
        if backend is BackendChoice.onnxruntime_int8 and uncertainty:
            raise FusionProxyError("--backend onnxruntime-int8 runs the RGB output only; drop --uncertainty")
        if backend is BackendChoice.onnxruntime_int8 and onnx is None:
            from ..api import INT8_FILE, resolve_model_dir

            if random_init:
                raise FusionProxyError("--backend onnxruntime-int8 runs an exported int8 model; pass --onnx FILE")
            onnx = resolve_model_dir(model or "default") / INT8_FILE
        if threads:
            torch.set_num_threads(threads)
        options = FuseOptions(
            batch_size=batch_size, resume=resume, resize_ir=resize_ir, uncertainty=uncertainty,
            ir_stretch=ir_gain(ir_stretch, agc_ema, ir_range), backend=backend.value, onnx_path=onnx,
            threads=threads, nan_to=nan_to,
            ir_homography=None if ir_homography is None else load_homography(ir_homography),
            max_skew=None if max_skew is None else max_skew / 1e3, reconnect=reconnect, sequence=sequence, fps=fps,
            frames=frames, show=show,
        )
        fusion = load_model(model, random_init, seed, console, device, half)
        if uncertainty and not fusion.has_uncertainty:
            raise FusionProxyError(f"{model or random_init}: this model has no uncertainty head; drop --uncertainty")
        summary = run_fuse(fusion, ir, vis, output, options, console)
        label = " (UNTRAINED random-init network)" if fusion.random_init else ""
        console.print(f"fuse{label}: {summary.line()} -> {output or 'window'}", highlight=False)
        if "interrupted" in summary.notes:
            raise typer.Exit(code=130)  # the shell's code for Ctrl-C
        if summary.failed:
            raise typer.Exit(code=1)

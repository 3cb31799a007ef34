"""`fusionproxy bench`: parameters, GFLOPs and latency of students or saved models, per backend and size."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Tuple

import typer
from rich.console import Console
from rich.table import Table

from ..errors import FusionProxyError


def _load(target: str, seed: int, device: str = "cpu", half: bool = False):
    """A saved model directory, "default" (the bundled model), or a registered student name (randomly
    initialised with `seed`), as a FusionProxy on `device`."""
    from ..api import FusionProxy
    from ..students import list_students

    if target == "default" or Path(target).is_dir():
        return FusionProxy.from_pretrained(target, device, half)
    if target in list_students():
        return FusionProxy.from_student(target, seed=seed).to_device(device, half)
    raise FusionProxyError(
        f"{target}: neither a model directory nor a student (students: {', '.join(list_students())})"
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def results_table(results: list, title: str) -> Table:
    table = Table(title=title)
    headers = ("model", "size", "backend", "params M", "GFLOPs", "median ms", "p90 ms", "min ms", "cpu ms", "FPS",
               "PSNR dB")
    for header in headers:
        table.add_column(header, justify="left" if header in ("model", "size", "backend") else "right")
    for r in results:
        row = [r.model, f"{r.height}x{r.width}", r.backend, _fmt(r.parameters / 1e6, 3), _fmt(r.gflops, 2)]
        if r.error:
            table.add_row(*row, f"[red]failed: {r.error}[/]", *[""] * (len(headers) - len(row) - 1))
        else:
            timings = (r.median_ms, r.p90_ms, r.min_ms, r.cpu_ms, r.fps, r.psnr_db)
            table.add_row(*row, *(_fmt(value) for value in timings))
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        target: Optional[str] = typer.Argument(None, help="A student name (random init), a saved model directory, or 'default'."),
        compare: Optional[str] = typer.Option(None, help="Comma-separated students/model dirs to compare."),
        sizes: str = typer.Option("480x640,768x1024", help="HEIGHTxWIDTH[,...] frame sizes."),
        backends: str = typer.Option(
            "eager,channels_last,onnxruntime",
            help="Comma-separated: eager, channels_last, bf16, compile, onnxruntime, onnxruntime-int8, "
            "onnxruntime-dynamic.",
        ),
        runs: int = typer.Option(100, min=1, help="Timed calls per measurement."),
        warmup: int = typer.Option(10, min=0, help="Untimed calls first."),
        threads: Optional[int] = typer.Option(None, min=1, help="CPU threads (default: torch's default)."),
        ir: Optional[Path] = typer.Option(None, help="IR image of a real pair to run on (default: seeded synthetic)."),
        vis: Optional[Path] = typer.Option(None, help="VIS image of that pair."),
        seed: int = typer.Option(0, help="Seed of randomly initialised students and of teacher sampling."),
        teacher: Optional[list[Path]] = typer.Option(
            None, help="A trained teacher directory: also time one sample of it per size (repeatable); prints "
            "the speed-up of the first model's fastest backend over it."),
        teacher_runs: int = typer.Option(3, min=1, help="Timed samples per teacher and size."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write all results and the environment here."),
        video: Optional[Tuple[Path, Path]] = typer.Option(
            None, "--video", metavar="IR VIS", help="Instead: end-to-end FPS of fusing this video pair "
            "(decode + fuse + encode) next to the network's own FPS at that size."),
        flicker: Optional[Path] = typer.Option(
            None, "--flicker", metavar="DATASET", help="Instead: flicker ratio on pan/zoom sequences made from "
            "the pairs of DATASET (ir/ and vi/), for the models and the classical baselines."),
        flicker_pairs: int = typer.Option(3, min=1, help="Pairs (one sequence each) for --flicker."),
        flicker_frames: int = typer.Option(8, min=2, help="Frames per --flicker sequence."),
        device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda[:N] or mps (absent: an error)."),
        half: bool = typer.Option(False, "--half", help="fp16 (CUDA only)."),
    ) -> None:
        """Benchmark fusion networks: parameters, GFLOPs, latency (median/p90/min), CPU time, FPS, PSNR vs fp32.

        FPS is 1000 / median ms. cpu ms is process CPU time per call; with --threads 1 it is the latency on an
        idle core even on a shared machine. PSNR is each backend's output against fp32 eager on the same input.
        """
        from .. import bench as bench_lib

        targets = [t.strip() for t in compare.split(",") if t.strip()] if compare else []
        if target:
            targets.insert(0, target)
        if not targets:
            raise FusionProxyError("bench: give a student name or model directory, or --compare a,b,c")
        for directory in teacher or ():
            if not (directory / "config.json").is_file():
                raise FusionProxyError(f"{directory}: not a trained teacher directory (no config.json)")
        if (ir is None) != (vis is None):
            raise FusionProxyError("bench: --ir and --vis go together (a real pair), or neither (synthetic)")
        pair = (ir, vis) if ir is not None and vis is not None else None
        for path in pair or ():
            if not path.is_file():
                raise FusionProxyError(f"{path}: file not found")
        models = [(t, _load(t, seed, device, half)) for t in targets]
        if video:
            return _video(models, video, threads)
        if flicker is not None:
            return _flicker(models, flicker, flicker_pairs, flicker_frames, seed)
        models = [(label, fusion.student) for label, fusion in models]
        size_list, backend_list = bench_lib.parse_sizes(sizes), bench_lib.parse_backends(backends)

        console = Console(stderr=True)
        results = []
        with console.status("benchmarking") as status:
            for label, model in models:
                results += bench_lib.benchmark(
                    model, label, size_list, backend_list, runs=runs, warmup=warmup, threads=threads, pair=pair,
                    on_step=lambda step: status.update(f"benchmarking {step}"),
                )
            for directory in teacher or ():
                status.update(f"sampling teacher {directory}")
                results += bench_lib.bench_teacher(directory, size_list, teacher_runs, threads, pair, seed)
        environment = bench_lib.environment()
        title = (f"{results[0].threads} threads, {runs} runs, input: {'real pair' if pair else 'synthetic'}, "
                 f"bf16 native: {environment['bf16_native']}")
        out = Console()
        if not out.is_terminal:  # a pipe or file gets 80 columns by default, which truncates the table
            out = Console(width=160)
        out.print(results_table(results, title))
        for size, name, teacher_ms, student, student_ms, speedup in bench_lib.speedups(results, targets[0]):
            out.print(f"speed-up at {size}: {name} one sample {teacher_ms / 1e3:.2f} s / {student} "
                      f"{student_ms:.1f} ms = {speedup:,.0f}x")
        if json_path is not None:
            bench_lib.write_json(json_path, results, targets[0], runs, warmup, pair)


def _video(models: list, video: tuple[Path, Path], threads: int | None) -> None:
    from ..throughput import video_throughput

    for path in video:
        if not path.is_file():
            raise FusionProxyError(f"{path}: video not found")
    out = Console()
    for label, fusion in models:
        result = video_throughput(fusion, video[0], video[1], threads)
        out.print(f"{label}: {result.frames} frames {result.height}x{result.width}, {result.threads} thread(s): "
                  f"end-to-end {result.end_to_end_fps:.2f} FPS (decode + fuse + encode), model alone "
                  f"{result.model_fps:.2f} FPS, ratio {result.ratio:.2f}", highlight=False)


def _flicker(models: list, dataset: Path, pairs: int, frames: int, seed: int) -> None:
    import cv2

    from ..baselines import get_baseline, list_baselines
    from ..io import find_dataset_pairs, read_ir, read_vis
    from ..metrics.flicker import flicker

    try:
        listing = find_dataset_pairs(dataset)
    except FileNotFoundError as error:
        raise FusionProxyError(str(error)) from None
    stills = [(read_ir(i), read_vis(v)) for _, i, v in listing.pairs[:pairs]]
    if not stills:
        raise FusionProxyError(f"{dataset}: no IR/VIS pairs")
    # Half size keeps a few sequences of a CPU model to seconds; flicker does not depend on resolution much.
    stills = [(cv2.resize(i, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
               cv2.resize(v, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)) for i, v in stills]
    methods = [(label, lambda i, v, f=fusion: f.fuse(i, v)) for label, fusion in models]
    methods += [(f"baseline:{name}", get_baseline(name)) for name in list_baselines()]
    table = Table(title=f"flicker: {len(stills)} pan/zoom sequence(s) of {frames} frames from {dataset}, seed {seed}")
    for header in ("method", "flicker ratio", "fused MAD", "visible MAD"):
        table.add_column(header, justify="left" if header == "method" else "right")
    for label, fuse in methods:
        result = flicker(fuse, stills, frames, seed)
        table.add_row(label, f"{result.ratio:.3f}", f"{result.fused:.5f}", f"{result.visible:.5f}")
    Console(width=160).print(table)

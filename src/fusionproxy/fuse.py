"""Fusion jobs: one pair, two folders of pairs (matched by file stem), or two streams paired by timestamp.

Every job finishes the good items and reports the bad ones (one line each, naming the file); outputs appear
atomically, so `resume` can trust that an existing output is complete; no output may land on an input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import io
from .api import FusionProxy
from .errors import FusionProxyError
from .finite import NonFiniteError
from .registration import check_sizes
from .sinks import VIDEO_SUFFIXES, FolderSink, Sink, VideoSink, WindowSink
from .sources import DEFAULT_FPS



@dataclass
class FuseOptions:
    """How a job runs; `ir_stretch` maps 16-bit IR to [0, 1] (default PercentileStretch(1, 99)).

    Streams only: `max_skew` (seconds), `reconnect`, `sequence` (folders of numbered frames at `fps`),
    `frames` (write numbered PNGs instead of a video), `show` (a window).
    """

    batch_size: int = 4
    resume: bool = False
    resize_ir: bool = False
    uncertainty: bool = False
    ir_stretch: io.Stretch | None = None
    backend: str = "eager"
    onnx_path: Path | None = None
    threads: int | None = None
    nan_to: float | None = None
    ir_homography: np.ndarray | None = None
    max_skew: float | None = None
    reconnect: int = 0
    sequence: bool = False
    fps: float | None = None
    frames: bool = False
    show: bool = False


@dataclass
class FuseSummary:
    """What a job did: counts of items fused, failed and skipped (resume), and one line per failure."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # streams: unused IR frames, dropped live frames, interrupted

    def line(self) -> str:
        return f"{self.ok} ok, {self.failed} failed, {self.skipped} skipped" + "".join(f"; {n}" for n in self.notes)


@dataclass(frozen=True)
class _Pair:
    ir: Path
    vis: Path
    out: Path


def uncertainty_path(output: Path) -> Path:
    """Where the uncertainty map of `output` goes: `<stem>_uncertainty.png` beside it."""
    return output.with_name(f"{output.stem}_uncertainty.png")


def uncertainty_image(log_variance: np.ndarray) -> np.ndarray:
    """Log-variance -> 16-bit image of the predicted standard deviation: std = value / 65535 (intensity units)."""
    std = np.exp(0.5 * log_variance.astype(np.float64))
    return np.round(np.clip(std, 0.0, 1.0) * 65535.0).astype(np.uint16)


def is_stream_source(spec: str) -> bool:
    """A video file, camera index, URL or GStreamer pipeline (what `cv2.VideoCapture` opens)."""
    return spec.isdigit() or "://" in spec or "!" in spec or Path(spec).suffix.lower() in VIDEO_SUFFIXES


def _output_file(out: Path, stem: str, suffixes: tuple[str, ...], default_suffix: str) -> Path:
    """`out` itself when it names a file of an accepted type, else `out/<stem><default_suffix>`."""
    return out if out.suffix.lower() in suffixes else out / f"{stem}{default_suffix}"


def _refuse_overwriting_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    resolved_inputs = {path.resolve() for path in inputs}
    for output in outputs:
        if output.resolve() in resolved_inputs:
            raise FusionProxyError(f"{output}: refusing to write the output over an input file; choose another -o")


class _Reporter:
    """Prints bad items as they happen and counts them."""

    def __init__(self, summary: FuseSummary, console: Console | None) -> None:
        self.summary, self.console = summary, console

    def fail(self, message: str, count: int = 1) -> None:
        self.summary.failed += count
        self.summary.errors.append(message)
        self.message(message, True)

    def message(self, message: str, failed: bool) -> None:
        """Print only (streams count their own items)."""
        if self.console is not None:
            self.console.print(f"[bold red]error:[/] {message}" if failed else f"note: {message}", highlight=False)

    def progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=self.console is None,
        )


def _plan_images(ir: Path, vis: Path, out: Path) -> tuple[list[_Pair], list[str]]:
    """The pairs to fuse, and one error line per file without a partner (folder mode)."""
    if ir.is_dir() and vis.is_dir():
        if out.resolve() in (ir.resolve(), vis.resolve()):
            raise FusionProxyError(f"{out}: the output folder must differ from the input folders")
        listing = io.find_pairs(ir, vis)
        unmatched = [f"{path}: no VIS partner with stem '{path.stem}' in {vis}" for path in listing.ir_only]
        unmatched += [f"{path}: no IR partner with stem '{path.stem}' in {ir}" for path in listing.vis_only]
        return [_Pair(i, v, out / f"{stem}.png") for stem, i, v in listing.pairs], unmatched
    for path in (ir, vis):
        if not path.exists():
            raise FusionProxyError(f"{path}: not found")
    if ir.is_dir() or vis.is_dir():
        raise FusionProxyError(f"{ir} / {vis}: give two image files, two folders or two videos, not a mix")
    return [_Pair(ir, vis, _output_file(out, vis.stem, io.IMAGE_SUFFIXES, ".png"))], []


def _outputs_of(pair: _Pair, options: FuseOptions) -> list[Path]:
    return [pair.out, uncertainty_path(pair.out)] if options.uncertainty else [pair.out]


def _load(pair: _Pair, options: FuseOptions) -> tuple[np.ndarray, np.ndarray]:
    ir = io.ir_from_array(io.read_raw(pair.ir, options.nan_to), options.ir_stretch)
    vis = io.vis_from_array(io.read_raw(pair.vis, options.nan_to))
    if options.ir_homography is None:  # with a registration, IR may have any size
        check_sizes(ir.shape[:2], vis.shape[:2], options.resize_ir, f"{pair.ir} / {pair.vis}")
    return ir, vis


def fuse_images(
    fusion: FusionProxy, ir: Path, vis: Path, out: Path, options: FuseOptions, console: Console | None = None
) -> FuseSummary:
    """Fuse a pair of files or two folders of pairs matched by stem (outputs `out/<stem>.png`)."""
    pairs, unmatched = _plan_images(Path(ir), Path(vis), Path(out))
    _refuse_overwriting_inputs(
        [o for pair in pairs for o in _outputs_of(pair, options)], [p for pair in pairs for p in (pair.ir, pair.vis)]
    )
    summary = FuseSummary()
    reporter = _Reporter(summary, console)
    for message in unmatched:
        reporter.fail(message)
    batch = max(1, options.batch_size)
    with reporter.progress() as progress:
        task = progress.add_task("fusing", total=len(pairs))
        for start in range(0, len(pairs), batch):
            loaded: list[tuple[_Pair, np.ndarray, np.ndarray]] = []
            for pair in pairs[start : start + batch]:
                if options.resume and all(path.is_file() for path in _outputs_of(pair, options)):
                    summary.skipped += 1
                    progress.advance(task)
                    continue
                try:
                    loaded.append((pair, *_load(pair, options)))
                except FusionProxyError as error:
                    reporter.fail(str(error))
                    progress.advance(task)
            if not loaded:
                continue
            results = fusion.fuse(
                [ir_array for _, ir_array, _ in loaded],
                [vis_array for _, _, vis_array in loaded],
                with_uncertainty=options.uncertainty,
                resize_ir=options.resize_ir,
                batch_size=batch,
                backend=options.backend,  # type: ignore[arg-type]
                onnx_path=options.onnx_path,
                threads=options.threads,
                ir_homography=options.ir_homography,
                on_bad_output="return",
            )
            for (pair, _, _), result in zip(loaded, results):
                if isinstance(result, NonFiniteError):
                    reporter.fail(f"{pair.ir} / {pair.vis}: {str(result).split(': ', 1)[-1]}")
                    progress.advance(task)
                    continue
                rgb, log_variance = result if options.uncertainty else (result, None)
                io.write_image(pair.out, rgb)
                if log_variance is not None:
                    io.write_image(uncertainty_path(pair.out), uncertainty_image(log_variance))
                summary.ok += 1
                progress.advance(task)
    return summary


def _stream_target(out: Path | None, vis: str, options: FuseOptions) -> Path | None:
    """The video file (or frames folder) a stream job writes: `out` itself, or `out/<vis name>.mp4`."""
    if out is None:
        return None
    if options.frames:
        if out.suffix.lower() in VIDEO_SUFFIXES or (out.exists() and not out.is_dir()):
            raise FusionProxyError(f"{out}: --frames writes numbered PNGs into a folder; give a folder as -o")
        return out
    stem = Path(vis).stem if Path(vis).exists() else "camera" + vis if vis.isdigit() else "stream"
    return _output_file(out, stem, VIDEO_SUFFIXES, ".mp4")


def _sinks(target: Path | None, fps: float, options: FuseOptions) -> list[Sink]:
    sinks: list[Sink] = [WindowSink()] if options.show else []
    if target is not None:
        sinks.append(FolderSink(target) if options.frames else VideoSink(target, fps))
    return sinks


def fuse_stream(
    fusion: FusionProxy, ir: str, vis: str, out: Path | None, options: FuseOptions, console: Console | None = None
) -> FuseSummary:
    """Fuse two streams (video files, cameras, URLs, pipelines, or numbered-frame folders with `sequence`),
    paired by timestamp, into a video file, a folder of frames (`frames`) and/or a window (`show`).

    The output follows the VIS stream (its frame rate and grid). Unpaired, damaged and non-finite frames are
    reported and counted as failed; Ctrl-C ends the job with the output written so far finalised.
    """
    if options.uncertainty:
        raise FusionProxyError(f"{vis}: --uncertainty writes PNG maps and is available for images, not streams")
    if out is None and not options.show:
        raise FusionProxyError(f"{ir} / {vis}: give -o (a video file or folder) or --show")
    target = _stream_target(out, vis, options)
    if target is not None:
        _refuse_overwriting_inputs([target], [Path(ir), Path(vis)])
        if target.resolve() in (Path(ir).resolve(), Path(vis).resolve()):
            raise FusionProxyError(f"{target}: the output must differ from the input folders")
    summary = FuseSummary()
    reporter = _Reporter(summary, console)
    # An interrupted video stays playable under its name; this marker says it is not the whole stream.
    unfinished = None if target is None or options.frames else target.with_name(f".{target.name}.unfinished")
    if options.resume and unfinished is not None and target.is_file():
        if not unfinished.exists():
            summary.skipped += 1
            return summary
        reporter.message(f"{target}: the last run stopped early; fusing the whole stream again", False)
    stream = fusion.stream(
        ir, vis, max_skew=options.max_skew, batch_size=options.batch_size, sequence=options.sequence,
        fps=options.fps, reconnect=options.reconnect, resize_ir=options.resize_ir,
        ir_homography=options.ir_homography, ir_stretch=options.ir_stretch, nan_to=options.nan_to,
        backend=options.backend, onnx_path=options.onnx_path, threads=options.threads,
        on_message=reporter.message,
    )
    total = len(stream.vis.files) if options.sequence else getattr(stream.vis, "frame_count", 0)
    sinks, finished = [], False
    try:
        sinks = _sinks(target, stream.vis.fps or options.fps or DEFAULT_FPS, options)
        with reporter.progress() as progress:
            task = progress.add_task("fusing frames", total=total or None)
            for _, rgb in stream:
                for sink in sinks:
                    sink.write(rgb)
                progress.advance(task)
        finished = not stream.report.interrupted
    except KeyboardInterrupt:
        stream.report.interrupted = True
    finally:
        stream.close()
        for sink in sinks:
            sink.close()
        if unfinished is not None and target.is_file():
            if finished:
                unfinished.unlink(missing_ok=True)
            else:
                unfinished.touch()
    summary.ok, summary.failed, summary.errors = stream.report.fused, stream.report.failed, stream.report.messages
    summary.notes = stream.report.notes
    return summary


def run_fuse(
    fusion: FusionProxy, ir: str | Path, vis: str | Path, out: str | Path | None, options: FuseOptions | None = None,
    console: Console | None = None,
) -> FuseSummary:
    """Fuse a pair, two folders, or two streams (videos, cameras, URLs, pipelines, `sequence` folders)."""
    options = options or FuseOptions()
    out = None if out is None else Path(out)
    ir, vis = str(ir), str(vis)
    if options.sequence or is_stream_source(ir) or is_stream_source(vis):
        if not options.sequence and not (is_stream_source(ir) and is_stream_source(vis)):
            raise FusionProxyError(f"{ir} / {vis}: give two streams (videos, cameras, URLs, pipelines), or two "
                                   "images; not one of each")
        return fuse_stream(fusion, ir, vis, out, options, console)
    if out is None:
        raise FusionProxyError(f"{ir} / {vis}: give -o (an image file or folder); --show is for streams")
    return fuse_images(fusion, Path(ir), Path(vis), out, options, console)

"""Fusion jobs: one pair, two folders of pairs (matched by file stem), or two videos frame by frame.

Every job finishes the good items and reports the bad ones (one line each, naming the file); outputs appear
atomically, so `resume` can trust that an existing output is complete; no output may land on an input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import io
from .api import FusionProxy, check_sizes
from .errors import FusionProxyError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
# mp4v is the MPEG-4 codec every OpenCV wheel can write; AVI containers get Motion-JPEG.
_FOURCC = {".avi": "MJPG"}
_DEFAULT_FOURCC = "mp4v"


@dataclass
class FuseOptions:
    """How a job runs; `ir_stretch` maps 16-bit IR to [0, 1] (default PercentileStretch(1, 99))."""

    batch_size: int = 4
    resume: bool = False
    resize_ir: bool = False
    uncertainty: bool = False
    ir_stretch: io.PercentileStretch | None = None
    backend: str = "eager"
    onnx_path: Path | None = None
    threads: int | None = None


@dataclass
class FuseSummary:
    """What a job did: counts of items fused, failed and skipped (resume), and one line per failure."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.ok} ok, {self.failed} failed, {self.skipped} skipped"


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


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


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
        if self.console is not None:
            self.console.print(f"[bold red]error:[/] {message}", highlight=False)

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
    ir = io.ir_from_array(io.read_raw(pair.ir), options.ir_stretch)
    vis = io.vis_from_array(io.read_raw(pair.vis))
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
            )
            for (pair, _, _), result in zip(loaded, results):
                rgb, log_variance = result if options.uncertainty else (result, None)
                io.write_image(pair.out, rgb)
                if log_variance is not None:
                    io.write_image(uncertainty_path(pair.out), uncertainty_image(log_variance))
                summary.ok += 1
                progress.advance(task)
    return summary


def _open_video(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise FusionProxyError(f"{path}: video not found")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FusionProxyError(f"{path}: cannot open the video (unknown container or codec)")
    return capture


def _read_frames(capture: cv2.VideoCapture, count: int) -> list[np.ndarray]:
    frames = []
    for _ in range(count):
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames


def fuse_videos(
    fusion: FusionProxy, ir: Path, vis: Path, out: Path, options: FuseOptions, console: Console | None = None
) -> FuseSummary:
    """Fuse two synchronised videos frame by frame into `out` (a video file, or `out/<vis stem>.mp4`).

    The output has the VIS video's frame rate and size. Frames are counted as items; frames of the longer
    video that have no partner are reported as failed.
    """
    ir, vis, out = Path(ir), Path(vis), Path(out)
    if options.uncertainty:
        raise FusionProxyError(f"{vis}: --uncertainty writes PNG maps and is available for images, not videos")
    target = _output_file(out, vis.stem, VIDEO_SUFFIXES, ".mp4")
    _refuse_overwriting_inputs([target], [ir, vis])
    summary = FuseSummary()
    reporter = _Reporter(summary, console)
    if options.resume and target.is_file():
        summary.skipped += 1
        return summary
    ir_capture, vis_capture = _open_video(ir), _open_video(vis)
    fps = vis_capture.get(cv2.CAP_PROP_FPS) or 25.0
    width, height = int(vis_capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(vis_capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    total = int(vis_capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(target.suffix.lower(), _DEFAULT_FOURCC))
    writer = cv2.VideoWriter(str(partial), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise FusionProxyError(f"{target}: OpenCV cannot write this container; use .mp4 or .avi")
    batch = max(1, options.batch_size)
    try:
        with reporter.progress() as progress:
            task = progress.add_task("fusing frames", total=total)
            frames = 0
            while True:
                ir_frames, vis_frames = _read_frames(ir_capture, batch), _read_frames(vis_capture, batch)
                paired = min(len(ir_frames), len(vis_frames))
                if paired:
                    ir_units = [io.ir_from_array(f, options.ir_stretch) for f in ir_frames[:paired]]
                    check_sizes(ir_units[0].shape[:2], (height, width), options.resize_ir, f"{ir} / {vis}")
                    fused = fusion.fuse(
                        ir_units,
                        [io.vis_from_array(f) for f in vis_frames[:paired]],
                        resize_ir=options.resize_ir,
                        batch_size=batch,
                        backend=options.backend,  # type: ignore[arg-type]
                        onnx_path=options.onnx_path,
                        threads=options.threads,
                    )
                    for rgb in fused:
                        frame = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
                        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    frames += paired
                    summary.ok += paired
                    progress.advance(task, paired)
                if paired < batch:
                    break
            _report_unpaired_frames(ir, vis, ir_capture, vis_capture, len(ir_frames) - paired,
                                    len(vis_frames) - paired, frames, reporter)
        writer.release()
        os.replace(partial, target)
    finally:
        writer.release()
        ir_capture.release()
        vis_capture.release()
        partial.unlink(missing_ok=True)
    return summary


def _report_unpaired_frames(
    ir: Path, vis: Path, ir_capture: cv2.VideoCapture, vis_capture: cv2.VideoCapture,
    ir_left: int, vis_left: int, fused: int, reporter: _Reporter,
) -> None:
    """Count the frames left in the longer video (the shorter one has ended) as failed items."""
    ir_left += sum(1 for _ in iter(ir_capture.grab, False))
    vis_left += sum(1 for _ in iter(vis_capture.grab, False))
    for path, left, other in ((ir, ir_left, vis), (vis, vis_left, ir)):
        if left:
            reporter.fail(f"{path}: {left} frames after frame {fused} have no partner ({other} ended); not fused", left)


def run_fuse(
    fusion: FusionProxy, ir: str | Path, vis: str | Path, out: str | Path, options: FuseOptions | None = None,
    console: Console | None = None,
) -> FuseSummary:
    """Fuse a pair, two folders or two videos, depending on what `ir` and `vis` are."""
    ir, vis, out = Path(ir), Path(vis), Path(out)
    options = options or FuseOptions()
    if _is_video(ir) or _is_video(vis):
        if not (_is_video(ir) and _is_video(vis)):
            raise FusionProxyError(f"{ir} / {vis}: give two videos, or two images; not one of each")
        return fuse_videos(fusion, ir, vis, out, options, console)
    return fuse_images(fusion, ir, vis, out, options, console)

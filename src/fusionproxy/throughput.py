"""End-to-end throughput of fusing a video pair (decode + fuse + encode) against the model's own speed."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch

from .api import FusionProxy
from .bench import make_runner, time_runner
from .errors import FusionProxyError
from .sinks import VideoSink


@dataclass
class VideoThroughput:
    """Frames fused per second end to end, and the network alone (B=1, same frame size, same threads)."""

    frames: int
    height: int
    width: int
    threads: int
    end_to_end_fps: float
    model_fps: float

    @property
    def ratio(self) -> float:
        return self.end_to_end_fps / self.model_fps


def video_throughput(
    fusion: FusionProxy, ir: Path, vis: Path, threads: int | None = None, runs: int = 10
) -> VideoThroughput:
    """Fuse the whole pair into a temporary .mp4 through `FusionProxy.stream` (batch 1), then time the
    network alone on `runs` frames of the same size (after one warm-up call each)."""
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="fusionproxy-bench-video-") as tmp:
        sink = VideoSink(Path(tmp) / "fused.mp4", 25.0)
        warm = cv2.VideoCapture(str(vis))
        ok, first = warm.read()
        warm.release()
        if not ok:
            raise FusionProxyError(f"{vis}: cannot read a frame from this video")
        height, width = first.shape[:2]
        parameter = next(fusion.parameters())
        runner = make_runner(fusion.student, *_zeros(height, width, parameter), "eager", threads, Path(tmp))
        runner()  # warm-up: first-call allocations are no part of either figure
        frames, start = 0, time.perf_counter()
        with fusion.stream(str(ir), str(vis), batch_size=1) as stream:
            for _, rgb in stream:
                sink.write(rgb)
                frames += 1
        sink.close()
        seconds = time.perf_counter() - start
        if frames == 0:
            raise FusionProxyError(f"{ir} / {vis}: no frame pairs fused ({'; '.join(stream.report.messages)})")
        model_seconds, _, _ = time_runner(runner, runs, warmup=1)
    return VideoThroughput(frames, height, width, threads, frames / seconds, 1.0 / float(model_seconds.mean()))


def _zeros(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Content does not change a convolutional network's speed; zeros keep the timing input-independent.
    return like.new_zeros(1, 1, height, width), like.new_zeros(1, 3, height, width)

"""Fusing two frame streams: timestamp pairing and a threaded decode -> pair -> fuse pipeline.

    with fusion.stream("ir.mp4", "vis.mp4") as frames:
        for timestamp, rgb in frames:       # rgb: float32 H x W x 3 in [0, 1] on the VIS grid
            ...
    print(frames.report.line())

One thread per source decodes (and converts IR through its gain, in frame order), one pairs frames by
timestamp, one runs the network; the caller's loop (typically encoding) runs meanwhile. Queues between them
are bounded, so memory stays flat; a live source whose queue is full drops its oldest frame (counted)
instead of falling ever further behind. Leaving the loop early, Ctrl-C, or the end of either stream stops
every thread and releases the sources.

Pairing: the VIS stream drives (the output has its frame rate and grid). Each VIS frame takes the IR frame
nearest in time if it lies within `max_skew`; otherwise the VIS frame is not fused and is counted. An IR
frame that no VIS frame came within `max_skew` of is counted as unpaired too; an IR frame that was within
reach but lost to a nearer one (IR faster than VIS) is only counted as unused. Frames are never shifted.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from . import io
from .errors import FusionProxyError
from .finite import check_input
from .registration import check_sizes
from .sources import DEFAULT_FPS, Frame, Source, open_source

if TYPE_CHECKING:
    from .api import Backend, FusionProxy

_POLL_S = 0.1  # how often a blocked thread checks whether the stream was stopped


@dataclass
class StreamReport:
    """What a stream did. `failed` counts frames that did not become output (and lost sources)."""

    fused: int = 0
    failed: int = 0
    unpaired_ir: int = 0
    unpaired_vis: int = 0
    unused_ir: int = 0
    dropped: int = 0
    messages: list[str] = field(default_factory=list)
    interrupted: bool = False
    on_message: Callable[[str, bool], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, message: str, failed: bool = True, count: int = 1) -> None:
        with self._lock:
            if failed:
                self.failed += count
            self.messages.append(message)
        if self.on_message is not None:
            self.on_message(message, failed)

    @property
    def notes(self) -> list[str]:
        """What the counts do not say: unused IR frames, dropped live frames, an interruption."""
        notes = [f"{self.unused_ir} IR frames unused (a nearer one was paired)"] if self.unused_ir else []
        notes += [f"{self.dropped} live frames dropped (fusion slower than the source)"] if self.dropped else []
        return notes + (["interrupted"] if self.interrupted else [])

    def line(self) -> str:
        return f"{self.fused} ok, {self.failed} failed" + "".join(f"; {item}" for item in self.notes)


@dataclass
class _Unit:
    """A converted frame: float32 [0, 1] (IR H x W, VIS H x W x 3) with its timestamp and label."""

    timestamp: float
    image: np.ndarray
    label: str
    used: bool = False
    near: bool = False


class _End:
    """Sentinel: the producer ended (normally, or with `error`)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def default_max_skew(ir: Source, vis: Source) -> float:
    """Half the frame period of the slower source (seconds)."""
    return 0.5 / min(ir.fps or DEFAULT_FPS, vis.fps or DEFAULT_FPS)


class FusionStream:
    """An iterable of (timestamp seconds, fused RGB float32 H x W x 3) built by `FusionProxy.stream`."""

    def __init__(
        self,
        fusion: FusionProxy,
        ir_source: Any,
        vis_source: Any,
        *,
        max_skew: float | None = None,
        queue_size: int = 8,
        batch_size: int = 1,
        sequence: bool = False,
        fps: float | None = None,
        reconnect: int = 0,
        resize_ir: bool = False,
        ir_homography: np.ndarray | None = None,
        ir_stretch: io.Stretch | None = None,
        nan_to: float | None = None,
        backend: Backend = "eager",
        onnx_path: str | Path | None = None,
        threads: int | None = None,
        on_message: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.fusion = fusion
        self.ir = open_source(ir_source, sequence, fps, reconnect, nan_to)
        try:
            self.vis = open_source(vis_source, sequence, fps, reconnect, nan_to)
        except BaseException:
            self.ir.close()
            raise
        self.max_skew = default_max_skew(self.ir, self.vis) if max_skew is None else max_skew
        self.report = StreamReport(on_message=on_message)
        self.queue_size, self.batch_size = max(1, queue_size), max(1, batch_size)
        self.resize_ir, self.ir_homography, self.ir_stretch, self.nan_to = resize_ir, ir_homography, ir_stretch, nan_to
        self.run_options = dict(backend=backend, onnx_path=onnx_path, threads=threads)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False

    # ----- the caller's side -----
    def __enter__(self) -> FusionStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        if self._started:
            raise FusionProxyError("a FusionStream can be iterated once; call FusionProxy.stream again")
        self._started = True
        output = self._start()
        try:
            while True:
                item = self._get(output)
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        except (KeyboardInterrupt, GeneratorExit):
            self.report.interrupted = True
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Stop every thread and release the sources (idempotent)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self.ir.close()
        self.vis.close()

    # ----- plumbing -----
    def _get(self, source: queue.Queue) -> Any:
        while True:
            try:
                return source.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return _End()

    def _put(self, target: queue.Queue, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                target.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _thread(self, work: Callable[[], None], output: queue.Queue) -> None:
        def run() -> None:
            try:
                work()
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread and raised there
                self._put(output, _End(error))

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _start(self) -> queue.Queue:
        ir_frames: queue.Queue = queue.Queue(self.queue_size)
        vis_frames: queue.Queue = queue.Queue(self.queue_size)
        pairs: queue.Queue = queue.Queue(self.queue_size)
        output: queue.Queue = queue.Queue(self.queue_size)
        self._thread(lambda: self._decode(self.ir, ir_frames, self._ir_unit), ir_frames)
        self._thread(lambda: self._decode(self.vis, vis_frames, self._vis_unit), vis_frames)
        self._thread(lambda: self._pair(ir_frames, vis_frames, pairs), pairs)
        self._thread(lambda: self._fuse(pairs, output), output)
        return output

    def _ir_unit(self, frame: Frame) -> np.ndarray:
        return io.ir_from_array(check_input(frame.image, frame.label, self.nan_to), self.ir_stretch)

    def _vis_unit(self, frame: Frame) -> np.ndarray:
        return io.vis_from_array(check_input(frame.image, frame.label, self.nan_to))

    def _decode(self, source: Source, output: queue.Queue, convert: Callable[[Frame], np.ndarray]) -> None:
        for frame in source.frames(self.report.add):
            if self._stop.is_set():
                return
            try:
                unit = _Unit(frame.timestamp, convert(frame), frame.label)
            except FusionProxyError as error:  # a bad frame (NaN, unusable data): report it, keep going
                self.report.add(f"{error}; skipped")
                continue
            if source.live and output.full():  # stay current: drop the oldest waiting frame
                try:
                    output.get_nowait()
                    with self.report._lock:
                        self.report.dropped += 1
                except queue.Empty:
                    pass
            if not self._put(output, unit):
                return
        self._put(output, _End())

    def _pair(self, ir_frames: queue.Queue, vis_frames: queue.Queue, output: queue.Queue) -> None:
        # A microsecond of slack: index / fps stamps are inexact in binary, and the default skew is exactly
        # half a period, so frames at that distance would otherwise pair or not by rounding.
        skew, waiting, ir_ended, vis_ended = self.max_skew + 1e-6, deque(), False, False
        first_unpaired: float | None = None

        def retire(unit: _Unit) -> None:
            if unit.used:
                return
            if unit.near:
                self.report.unused_ir += 1
            else:
                self.report.unpaired_ir += 1

        while True:
            vis = self._get(vis_frames)
            if isinstance(vis, _End):
                if vis.error is not None:
                    raise vis.error
                vis_ended = True
                break
            while not ir_ended and (not waiting or waiting[-1].timestamp <= vis.timestamp + skew):
                ir = self._get(ir_frames)
                if isinstance(ir, _End):
                    if ir.error is not None:
                        raise ir.error
                    ir_ended = True
                else:
                    waiting.append(ir)
            while waiting and waiting[0].timestamp < vis.timestamp - skew:
                retire(waiting.popleft())
            for unit in waiting:
                unit.near = unit.near or abs(unit.timestamp - vis.timestamp) <= skew
            best = min(waiting, key=lambda unit: abs(unit.timestamp - vis.timestamp), default=None)
            if best is None or abs(best.timestamp - vis.timestamp) > skew:
                self.report.unpaired_vis += 1
                first_unpaired = vis.timestamp if first_unpaired is None else first_unpaired
                if ir_ended and not waiting:
                    break
                continue
            best.used = True
            if not self._put(output, (best, vis)):
                return
        self._finish_pairing(ir_frames, vis_frames, waiting, (ir_ended, vis_ended), first_unpaired, retire)
        self._put(output, _End())

    def _finish_pairing(
        self, ir_frames: queue.Queue, vis_frames: queue.Queue, waiting: deque, ended: tuple[bool, bool],
        first_unpaired: float | None, retire: Callable[[_Unit], None],
    ) -> None:
        """Count what one stream still held when the other ended (finite sources only), and report."""
        for unit in waiting:
            retire(unit)
        ms = 1e3 * self.max_skew
        if not self._stop.is_set():
            for frames, source, done in ((ir_frames, self.ir, ended[0]), (vis_frames, self.vis, ended[1])):
                if done or source.live:
                    continue
                left = 0
                while not isinstance(self._get(frames), _End):
                    left += 1
                if source is self.ir:
                    self.report.unpaired_ir += left
                else:
                    self.report.unpaired_vis += left
        if self.report.unpaired_vis:
            self.report.add(f"{self.vis.name}: {self.report.unpaired_vis} frames (first at {first_unpaired or 0:.3f} s) "
                            f"have no IR frame within {ms:.1f} ms in {self.ir.name}; not fused",
                            count=self.report.unpaired_vis)
        if self.report.unpaired_ir:
            self.report.add(f"{self.ir.name}: {self.report.unpaired_ir} frames have no VIS frame within {ms:.1f} ms "
                            f"in {self.vis.name}; not fused", count=self.report.unpaired_ir)

    def _fuse(self, pairs: queue.Queue, output: queue.Queue) -> None:
        ended = False
        while not ended:
            item = self._get(pairs)
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                break
            batch = [item]
            while len(batch) < self.batch_size:  # take what is already waiting, never wait for a full batch
                try:
                    more = pairs.get_nowait()
                except queue.Empty:
                    break
                if isinstance(more, _End):
                    if more.error is not None:
                        raise more.error
                    ended = True
                    break
                batch.append(more)
            for result in self._fuse_batch(batch):
                if result is not None and not self._put(output, result):
                    return
        self._put(output, _End())

    def _fuse_batch(self, batch: list[tuple[_Unit, _Unit]]) -> list[tuple[float, np.ndarray] | None]:
        for ir, vis in batch:
            if self.ir_homography is None:
                what = f"{ir.label} / {vis.label}"
                check_sizes(ir.image.shape[:2], vis.image.shape[:2], self.resize_ir, what)
        results = self.fusion.fuse(
            [ir.image for ir, _ in batch], [vis.image for _, vis in batch], resize_ir=self.resize_ir,
            ir_homography=self.ir_homography, batch_size=self.batch_size, on_bad_output="return",
            **self.run_options,
        )
        answers: list[tuple[float, np.ndarray] | None] = []
        for (_, vis), rgb in zip(batch, results):
            if isinstance(rgb, FusionProxyError):
                self.report.add(f"{vis.label}: {str(rgb).split(': ', 1)[-1]}")
                answers.append(None)
            else:
                self.report.fused += 1
                answers.append((vis.timestamp, rgb))
        return answers

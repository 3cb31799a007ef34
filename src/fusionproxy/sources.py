"""Frame sources for live fusion: whatever `cv2.VideoCapture` opens, folders of numbered frames, user iterables.

A source yields `Frame`s (raw arrays as decoded, with a timestamp in seconds) and reports, through a callback,
what it had to skip: a frame that fails to decode, a frame whose size changed, a network source that dropped
(reopened up to `reconnect` times). Timestamps are media time (frame index / fps, or frame number / fps for
numbered frames) for files, folders and iterables, and arrival time on the monotonic clock for live sources
(cameras, network streams, pipelines), the only clock two independent cameras share.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from . import io
from .errors import FusionProxyError

DEFAULT_FPS = 25.0
# After this many consecutive frames that fail to decode, a file is taken to have ended.
_MAX_DAMAGED_RUN = 25

Report = Callable[[str, bool], None]  # (one-line message, whether it counts as a failed item)


@dataclass
class Frame:
    """One decoded frame: raw array (uint8/uint16/float, RGB order when 3-channel), seconds, and a label."""

    timestamp: float
    image: np.ndarray
    label: str


class Source:
    """Base of every source: a name for messages, whether frames arrive in real time, the nominal fps."""

    name: str = "source"
    live: bool = False
    fps: float | None = None

    def frames(self, report: Report) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (a capture device); safe to call twice."""


def _quiet_opencv() -> None:
    # OpenCV prints its own warnings for every failed open/read; ours name the source in one line instead.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGBA)
    return frame


class CaptureSource(Source):
    """A camera index, an RTSP/HTTP URL, a GStreamer pipeline or a video file, opened by `cv2.VideoCapture`."""

    def __init__(self, spec: str | int, reconnect: int = 0) -> None:
        _quiet_opencv()
        self.spec = spec
        self.name = str(spec)
        self.reconnect = reconnect
        self.is_file = isinstance(spec, str) and Path(spec).is_file()
        self.live = not self.is_file
        self._capture = self._open()
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None  # cameras and some streams report 0 (unknown)
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) if self.is_file else 0

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.spec, str) and "!" in self.spec:  # gst-launch syntax: elements joined by '!'
            if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
                raise FusionProxyError(f"{self.name}: looks like a GStreamer pipeline, but this OpenCV build has no "
                                       "GStreamer support (opencv-python-headless wheels do not)")
            capture = cv2.VideoCapture(self.spec, cv2.CAP_GSTREAMER)
        else:
            capture = cv2.VideoCapture(self.spec)
        if not capture.isOpened():
            what = "camera" if isinstance(self.spec, int) else "video file" if self.is_file else "stream"
            raise FusionProxyError(f"{self.name}: cannot open the {what} (OpenCV could not open it)")
        return capture

    def frames(self, report: Report) -> Iterator[Frame]:
        index, damaged_run, attempts, size = 0, 0, 0, None
        fps = self.fps or DEFAULT_FPS
        while True:
            ok, frame = self._capture.read()
            if ok and frame is not None and size not in (None, frame.shape):
                report(f"{self.name}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, not {size[1]}x{size[0]} "
                       "like the frames before; skipped", True)
                index += 1
                continue
            if ok and frame is not None:
                size, damaged_run = frame.shape, 0
                stamp = index / fps if self.is_file else time.monotonic()
                yield Frame(stamp, _rgb(frame), f"{self.name} frame {index}")
                index += 1
                continue
            if self.is_file:
                if index + damaged_run >= self.frame_count or damaged_run >= _MAX_DAMAGED_RUN:
                    return
                damaged_run += 1
                report(f"{self.name}: frame {index} could not be decoded; skipped", True)
                index += 1
                continue
            if attempts >= self.reconnect:
                tail = f" after {attempts} reconnect attempt(s)" if self.reconnect else " (no --reconnect)"
                report(f"{self.name}: source stopped after {index} frames{tail}", True)
                return
            attempts += 1
            report(f"{self.name}: source stopped after {index} frames; reconnecting ({attempts}/{self.reconnect})",
                   False)
            self._capture.release()
            time.sleep(min(0.5 * attempts, 5.0))  # back off: a restarting camera or server needs a moment
            try:
                self._capture = self._open()
            except FusionProxyError:
                continue

    def close(self) -> None:
        self._capture.release()


_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a file stem


class SequenceSource(Source):
    """A folder of numbered frames (`frame_000123.png`, `17.tif`, ...); timestamp = frame number / fps.

    Gaps in the numbering are dropped frames, so timestamp pairing sees them as such.
    """

    def __init__(self, folder: str | Path, fps: float = DEFAULT_FPS, nan_to: float | None = None) -> None:
        self.folder, self.nan_to = Path(folder), nan_to
        self.name = str(folder)
        self.fps = fps
        if not self.folder.is_dir():
            raise FusionProxyError(f"{self.folder}: --sequence needs a folder of numbered frames")
        files = [p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in io.INPUT_SUFFIXES]
        self.unnumbered = sorted(p for p in files if not _NUMBER.search(p.stem))
        numbered = sorted((int(_NUMBER.search(p.stem).group(1)), p) for p in files if _NUMBER.search(p.stem))
        if not numbered:
            raise FusionProxyError(f"{self.folder}: no numbered frames ({', '.join(io.INPUT_SUFFIXES)})")
        self.files = numbered

    def frames(self, report: Report) -> Iterator[Frame]:
        for path in self.unnumbered:
            report(f"{path}: no frame number in the name; skipped", True)
        for number, path in self.files:
            try:
                image = io.read_raw(path, self.nan_to)
            except FusionProxyError as error:
                report(f"{error}; skipped", True)
                continue
            yield Frame(number / self.fps, image, str(path))


class IterableSource(Source):
    """User frames: an iterable of arrays (timestamp = index / fps) or of (timestamp seconds, array) pairs."""

    def __init__(self, frames: Iterable[Any], fps: float = DEFAULT_FPS, name: str = "frames") -> None:
        self.items, self.fps, self.name = frames, fps, name

    def frames(self, report: Report) -> Iterator[Frame]:
        for index, item in enumerate(self.items):
            if isinstance(item, tuple) and len(item) == 2:
                stamp, image = float(item[0]), item[1]
            else:
                stamp, image = index / self.fps, item
            yield Frame(stamp, np.asarray(image), f"{self.name} frame {index}")


def open_source(
    spec: Any, sequence: bool = False, fps: float | None = None, reconnect: int = 0, nan_to: float | None = None
) -> Source:
    """A Source for: a Source; a camera index (int or digits); a folder with `sequence`; an iterable of
    frames; or any other string OpenCV opens (video file, URL, GStreamer pipeline)."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if sequence:
            return SequenceSource(text, fps or DEFAULT_FPS, nan_to)
        if Path(text).is_dir():
            raise FusionProxyError(f"{text}: a folder; pass --sequence (sequence=True) to read its numbered frames")
        if text.isdigit():
            return CaptureSource(int(text), reconnect)
        if "://" not in text and "!" not in text and not Path(text).is_file():
            raise FusionProxyError(f"{text}: not found (expected a video file, camera index, URL or pipeline)")
        return CaptureSource(text, reconnect)
    if isinstance(spec, int):
        return CaptureSource(spec, reconnect)
    if isinstance(spec, Iterable) and not isinstance(spec, np.ndarray):
        return IterableSource(spec, fps or DEFAULT_FPS)
    raise TypeError(f"unsupported frame source of type {type(spec).__name__}")

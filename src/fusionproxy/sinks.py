"""Where fused stream frames go: a video file, a folder of numbered frames, or a window.

A video is written to a hidden `.<name>.partial<suffix>` and renamed into place when it is closed, also
after an interruption or a lost source, so what was written so far is a complete, playable file.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from . import io
from .errors import FusionProxyError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
# mp4v is the MPEG-4 codec every OpenCV wheel can write; AVI containers get Motion-JPEG.
_FOURCC = {".avi": "MJPG"}
_DEFAULT_FOURCC = "mp4v"


def to_bgr8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> uint8 BGR, as OpenCV writes and shows."""
    return cv2.cvtColor(np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8), cv2.COLOR_RGB2BGR)


class Sink:
    def write(self, rgb: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output; safe to call twice."""


class VideoSink(Sink):
    """A video file at `fps`; the size is taken from the first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(self.path.suffix.lower(), _DEFAULT_FOURCC))
            self._writer = cv2.VideoWriter(str(self.partial), fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
            if not self._writer.isOpened():
                raise FusionProxyError(f"{self.path}: OpenCV cannot write this container; use .mp4 or .avi")
        self._writer.write(to_bgr8(rgb))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self.partial, self.path)


class FolderSink(Sink):
    """`folder/000000.png`, `000001.png`, ... (each written atomically)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.count = Path(folder), 0

    def write(self, rgb: np.ndarray) -> None:
        io.write_image(self.folder / f"{self.count:06d}.png", rgb)
        self.count += 1


class WindowSink(Sink):
    """An OpenCV window; closing it or pressing q / Esc raises KeyboardInterrupt, like Ctrl-C."""

    NAME = "fusionproxy"

    def __init__(self) -> None:
        try:
            cv2.namedWindow(self.NAME, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise FusionProxyError(
                "--show: this OpenCV has no GUI support or no display is available (opencv-python-headless "
                "cannot open windows); write to a video or folder with -o instead"
            ) from None

    def write(self, rgb: np.ndarray) -> None:
        cv2.imshow(self.NAME, to_bgr8(rgb))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27) or cv2.getWindowProperty(self.NAME, cv2.WND_PROP_VISIBLE) < 1:
            raise KeyboardInterrupt

    def close(self) -> None:
        cv2.destroyWindow(self.NAME)

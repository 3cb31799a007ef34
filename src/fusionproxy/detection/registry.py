"""Detector formats by name: how an ONNX export's input is prepared and its output decoded.

A format is a class registered with `@register_detector("name")`, built from an onnxruntime session, with
`accepts(session) -> bool` (does this export look like mine?) and `detect(rgb_uint8, min_score) -> Detections`
(boxes in the original image's pixels, COCO class ids). The evaluation only sees that interface, so another
export style (e.g. YOLOv8's 1 x 84 x N output) is one new module, not a change to the evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import FusionProxyError
from ..registry import Registry
from .boxes import Detections

AUTO = "auto"


class Detector(Protocol):
    def detect(self, rgb: np.ndarray, min_score: float) -> Detections:
        """Detections with score >= min_score on an H x W x 3 uint8 RGB image."""
        ...


DETECTOR_FORMATS: Registry[Any] = Registry("detector format")


def register_detector(name: str):
    """Class decorator: `@register_detector("yolox")` makes the format selectable by name."""
    return DETECTOR_FORMATS.register(name)


def load_detector(path: str | Path, detector_format: str = AUTO, threads: int = 1) -> Detector:
    """The frozen detector in the ONNX file `path`, run by onnxruntime on `threads` intra-op threads.

    `detector_format` names a registered format; `auto` takes the one whose `accepts` recognises the export.
    The detector is only ever run forward: it is an evaluator, not a model being trained.
    """
    from ..export import onnx_session

    path = Path(path)
    if not path.is_file():
        raise FusionProxyError(f"{path}: detector ONNX file not found")
    session = onnx_session(path, threads)
    if detector_format != AUTO:
        if detector_format not in DETECTOR_FORMATS:
            known = ", ".join(DETECTOR_FORMATS.names())
            raise FusionProxyError(f"unknown detector format '{detector_format}' (known: {known})")
        return DETECTOR_FORMATS.get(detector_format)(session)
    for name in DETECTOR_FORMATS.names():
        if DETECTOR_FORMATS.get(name).accepts(session):
            return DETECTOR_FORMATS.get(name)(session)
    shapes = ", ".join(f"{o.name} {o.shape}" for o in session.get_outputs())
    raise FusionProxyError(f"{path}: no registered detector format recognises its outputs ({shapes}); "
                           f"name one with --detector-format ({', '.join(DETECTOR_FORMATS.names())})")

"""Frozen object detectors as evaluators of fused images: ONNX formats, labels, and VOC-style AP.

`load_detector(onnx_path)` picks a registered format (`yolox` so far); `fusionproxy.evaluate` uses it to
measure how much more a frozen RGB detector finds in fused frames than in (degraded) visible ones.
"""

from . import yolox  # noqa: F401  (registers the format)
from .boxes import ROAD_CLASSES, Detections
from .registry import DETECTOR_FORMATS, Detector, load_detector, register_detector

__all__ = ["DETECTOR_FORMATS", "Detections", "Detector", "ROAD_CLASSES", "load_detector", "register_detector"]

"""YOLOX ONNX exports (Megvii's `tools/export_onnx.py`, decoding left out of the graph).

Input: 1 x 3 x S x S float32, BGR, raw 0-255, letterboxed at the top-left on a canvas of 114 (YOLOX `preproc`).
Output: 1 x A x (5 + K): per anchor of the stride-8, 16, 32 grids (row-major), box offsets, objectness and K
class probabilities. Decoding as YOLOX's `demo_postprocess` + `multiclass_nms` (class-aware, IoU 0.45); see
/work/shared/models/README.md for the checked COCO Nano export.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .boxes import Detections, class_aware_nms, clip_to_image
from .registry import register_detector

STRIDES = (8, 16, 32)
PAD_VALUE = 114.0
NMS_IOU = 0.45


@register_detector("yolox")
class YoloxDetector:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.height, self.width = session.get_inputs()[0].shape[2:]
        cells, strides = [], []
        for stride in STRIDES:
            gy, gx = np.mgrid[: self.height // stride, : self.width // stride]
            cells.append(np.stack([gx.ravel(), gy.ravel()], axis=1))
            strides.append(np.full((gx.size, 1), stride))
        self.cells = np.concatenate(cells).astype(np.float32)
        self.strides = np.concatenate(strides).astype(np.float32)

    @classmethod
    def accepts(cls, session: Any) -> bool:
        """One fixed-size NCHW input and one output of A x (5 + K) rows, A the anchors of strides 8, 16, 32."""
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            return False
        shape_in, shape_out = inputs[0].shape, outputs[0].shape
        if len(shape_in) != 4 or not all(isinstance(v, int) for v in shape_in[2:]) or len(shape_out) != 3:
            return False
        anchors = sum((shape_in[2] // s) * (shape_in[3] // s) for s in STRIDES)
        return shape_out[1] == anchors and isinstance(shape_out[2], int) and shape_out[2] > 5

    def detect(self, rgb: np.ndarray, min_score: float) -> Detections:
        height, width = rgb.shape[:2]
        ratio = min(self.height / height, self.width / width)
        resized = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), (int(width * ratio), int(height * ratio)),
                             interpolation=cv2.INTER_LINEAR)
        canvas = np.full((self.height, self.width, 3), PAD_VALUE, np.float32)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        raw = self.session.run(None, {self.input_name: canvas.transpose(2, 0, 1)[None]})[0][0]
        classes = raw[:, 5:].argmax(axis=1)  # the best class per anchor
        scores = raw[:, 4] * raw[np.arange(len(raw)), 5 + classes]
        keep = scores >= min_score
        raw, strides = raw[keep], self.strides[keep]
        centre = (raw[:, :2] + self.cells[keep]) * strides / ratio
        size = np.exp(raw[:, 2:4]) * strides / ratio
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        found = class_aware_nms(Detections(boxes, scores[keep], classes[keep]), NMS_IOU)
        return clip_to_image(found, height, width)

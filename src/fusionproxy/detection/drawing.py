"""Boxes drawn onto a frame, for looking at what a detector found (one colour per scored class)."""

from __future__ import annotations

import cv2
import numpy as np

from .boxes import ROAD_CLASSES, Detections

# RGB, distinct on dark, bright and foggy frames alike.
COLOURS: dict[int, tuple[int, int, int]] = {
    0: (255, 40, 40), 1: (255, 160, 0), 2: (0, 220, 255), 3: (200, 0, 255), 5: (60, 255, 60), 7: (255, 255, 0),
}


def draw_detections(rgb: np.ndarray, detections: Detections, show_scores: bool = True) -> np.ndarray:
    """A copy of the H x W x 3 uint8 frame with each box outlined and labelled `class score` (or `class`)."""
    canvas = np.ascontiguousarray(rgb[..., :3]).copy()
    for box, score, class_id in zip(detections.boxes, detections.scores, detections.classes):
        colour = COLOURS.get(int(class_id), (255, 255, 255))
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        text = ROAD_CLASSES.get(int(class_id), str(int(class_id))) + (f" {score:.2f}" if show_scores else "")
        cv2.putText(canvas, text, (x1 + 2, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return canvas

"""Boxes of one image: what a detector returns and what a label file holds, in one shape."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The road-scene classes that detection scores are computed on, by COCO id (what COCO-trained detectors emit).
ROAD_CLASSES: dict[int, str] = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}


@dataclass(frozen=True)
class Detections:
    """`boxes` N x 4 (x1, y1, x2, y2 in pixels of the original image), `scores` N, `classes` N COCO ids.

    References (labels or pseudo-labels) use the same type, labels with score 1.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> Detections:
        """The subset picked by a boolean mask or index array."""
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])

    def above(self, min_score: float) -> Detections:
        return self.select(self.scores >= min_score)

    def of_classes(self, classes: dict[int, str] | list[int]) -> Detections:
        return self.select(np.isin(self.classes, list(classes)))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one x1y1x2y2 box with each of M boxes (continuous coordinates, no +1)."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def class_aware_nms(detections: Detections, iou_threshold: float) -> Detections:
    """Non-maximum suppression within each class (`cv2.dnn.NMSBoxesBatched`), kept in descending score order."""
    if not len(detections):
        return detections
    xywh = np.concatenate([detections.boxes[:, :2], detections.boxes[:, 2:] - detections.boxes[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.astype(np.float64), detections.scores.astype(np.float32),
                                   detections.classes.astype(np.int32), 0.0, iou_threshold)
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return detections.select(keep[np.argsort(-detections.scores[keep], kind="stable")])


def clip_to_image(detections: Detections, height: int, width: int) -> Detections:
    boxes = detections.boxes.copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, height)
    return Detections(boxes, detections.scores, detections.classes)

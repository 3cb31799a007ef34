"""VOC-style average precision at IoU 0.5, pooled over images, with a paired bootstrap over images.

Matching (PASCAL VOC devkit): per image and class, detections in descending score order each take the
reference they overlap most; IoU >= 0.5 with a reference not yet taken is a hit, anything else (no overlap, or
a duplicate of an object already found) a false positive. AP is the all-point interpolated area under the
precision-recall curve of a class's detections pooled over all images (VOC 2010+). Because a detection can only
match references of its own image, a bootstrap resample of images just re-weights each image's matches; the
resampled AP is computed exactly from those weights, without matching again.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .boxes import Detections, iou

IOU_THRESHOLD = 0.5
MIN_REFERENCES = 5  # classes with fewer references over the dataset are left out of the mAP
REFERENCE_SCORE = 0.35  # pseudo-references and the operating point of the recall column
MIN_SCORE = 0.01  # detections pooled into the AP
BOOTSTRAP_ELEMENTS = 1 << 22  # resamples x detections processed at once (bounds the memory)


@dataclass(frozen=True)
class Matched:
    """One row's detections over a list of images, each a hit or not, and the reference counts.

    `image`, `classes`, `scores`, `hits`: one entry per detection; `references`: images x `class_ids` counts.
    """

    image: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    hits: np.ndarray
    references: np.ndarray
    class_ids: tuple[int, ...]


def match_image(detections: Detections, references: Detections, iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """Hit flags of `detections` against the `references` of the same image (see the module docstring)."""
    hits = np.zeros(len(detections), dtype=bool)
    for class_id in np.unique(detections.classes):
        candidates = references.boxes[references.classes == class_id]
        taken = np.zeros(len(candidates), dtype=bool)
        indices = np.flatnonzero(detections.classes == class_id)
        for index in indices[np.argsort(-detections.scores[indices], kind="stable")]:
            if not len(candidates):
                break
            overlaps = iou(detections.boxes[index], candidates)
            best = int(np.argmax(overlaps))
            if overlaps[best] >= iou_threshold and not taken[best]:
                hits[index] = taken[best] = True
    return hits


def match_images(detections: Sequence[Detections], references: Sequence[Detections],
                 class_ids: Sequence[int]) -> Matched:
    """Match each image's detections (only those of `class_ids`) against its references."""
    kept = [d.of_classes(list(class_ids)) for d in detections]
    return Matched(
        image=np.concatenate([np.full(len(d), i) for i, d in enumerate(kept)] + [np.zeros(0, np.int64)]),
        classes=np.concatenate([d.classes for d in kept] + [np.zeros(0, np.int64)]),
        scores=np.concatenate([d.scores for d in kept] + [np.zeros(0, np.float32)]),
        hits=np.concatenate([match_image(d, r) for d, r in zip(kept, references)] + [np.zeros(0, bool)]),
        references=_per_image_counts(references, class_ids),
        class_ids=tuple(class_ids),
    )


def _per_image_counts(references: Sequence[Detections], class_ids: Sequence[int]) -> np.ndarray:
    counts = [[int(np.sum(r.classes == c)) for c in class_ids] for r in references]
    return np.array(counts, np.int64).reshape(len(references), len(class_ids))


def reference_counts(references: Sequence[Detections], class_ids: Sequence[int]) -> dict[int, int]:
    """References per class over all images."""
    return dict(zip(class_ids, _per_image_counts(references, class_ids).sum(axis=0).tolist()))


def evaluated_classes(counts: dict[int, int], min_references: int = MIN_REFERENCES) -> list[int]:
    """The classes with at least `min_references` references (`reference_counts`): those the mAP averages."""
    return [c for c, total in counts.items() if total >= min_references]


def _weighted_ap(matched: Matched, class_id: int, weights: np.ndarray) -> np.ndarray:
    """AP of `class_id` under image weights (R x images; all ones = the plain AP): one value per row of weights."""
    selected = np.flatnonzero(matched.classes == class_id)
    order = selected[np.argsort(-matched.scores[selected], kind="stable")]
    hits = matched.hits[order]
    positives = weights @ matched.references[:, matched.class_ids.index(class_id)]
    result = np.empty(len(weights))
    block = max(1, BOOTSTRAP_ELEMENTS // max(len(order), 1))
    for start in range(0, len(weights), block):
        w = weights[start : start + block][:, matched.image[order]]
        tp, fp = np.cumsum(w * hits, axis=1), np.cumsum(w * ~hits, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = tp / positives[start : start + block, None]
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-12), 0.0)
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        steps = np.diff(recall, axis=1, prepend=0.0)
        result[start : start + block] = (steps * envelope).sum(axis=1)
    result[positives == 0] = np.nan
    return result


def bootstrap_map(matched: Matched, classes: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """The mAP of `classes` under each row of image weights (`bootstrap_weights`: one mAP per resample); a
    class without references in a resample is left out of that resample's mean."""
    if not classes:
        return np.full(len(weights), np.nan)
    per_class = np.stack([_weighted_ap(matched, c, weights) for c in classes])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample may lack a class: left out of its mean
        return np.nanmean(per_class, axis=0)


def _ones(matched: Matched) -> np.ndarray:
    return np.ones((1, len(matched.references)))


def average_precision(matched: Matched, class_id: int) -> float:
    """AP50 of one class (NaN without references)."""
    return float(_weighted_ap(matched, class_id, _ones(matched))[0])


def mean_average_precision(matched: Matched, classes: Sequence[int]) -> float:
    """Mean of the AP50 of `classes` (usually `evaluated_classes`); NaN if there are none."""
    return float(bootstrap_map(matched, classes, _ones(matched))[0])


def recall_at(matched: Matched, min_score: float) -> float:
    """Share of all references (every class in `class_ids`) found by a detection scoring >= `min_score`."""
    total = matched.references.sum()
    return float(np.sum(matched.hits & (matched.scores >= min_score)) / total) if total else float("nan")


def bootstrap_weights(images: int, resamples: int, seed: int) -> np.ndarray:
    """resamples x images: how often each image is drawn in each resample (images drawn with replacement)."""
    draws = np.random.default_rng(seed).integers(0, images, size=(resamples, images))
    weights = np.zeros((resamples, images))
    np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
    return weights


def paired_interval(row_samples: np.ndarray, base_samples: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the lift mAP(row) - mAP(base) from both rows' mAPs on the same resamples."""
    low, high = np.nanpercentile(row_samples - base_samples, [2.5, 97.5])
    return float(low), float(high)

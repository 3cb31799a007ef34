"""Detection scoring by hand: VOC matching and all-point AP, class selection, bootstrap, YOLO labels, levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionproxy.detection import Detections
from fusionproxy.detection import average_precision as ap
from fusionproxy.detection.labels import YoloLabels, class_map
from fusionproxy.errors import FusionProxyError
from fusionproxy.evaluate.detection import DetectionSettings
from fusionproxy.evaluate.methods import BaselineMethod, FolderMethod, MeanMethod, TeacherMethod
from fusionproxy.visibility import LEVELS

CAR, PERSON = 2, 0


def _boxes(*rows: tuple[int, float, tuple[float, float, float, float]]) -> Detections:
    """(class, score, box) rows -> Detections."""
    if not rows:
        return Detections.empty()
    return Detections(np.array([r[2] for r in rows], np.float32), np.array([r[1] for r in rows], np.float32),
                      np.array([r[0] for r in rows], np.int64))


A, B, FAR = (0, 0, 10, 10), (20, 20, 30, 30), (50, 50, 60, 60)
NEAR_A = (1, 0, 11, 10)  # IoU with A: 90/110 > 0.5
REFERENCES = [_boxes((CAR, 1.0, A), (CAR, 1.0, B)), _boxes((CAR, 1.0, A))]
# In score order: hit, duplicate of an object already found, hit, miss, hit.
DETECTIONS = [
    _boxes((CAR, 0.9, A), (CAR, 0.8, NEAR_A), (CAR, 0.6, FAR), (CAR, 0.5, B)),
    _boxes((CAR, 0.7, A)),
]


def test_a_duplicate_detection_is_a_false_positive() -> None:
    hits = ap.match_image(DETECTIONS[0], REFERENCES[0])
    assert hits.tolist() == [True, False, False, True]


def test_all_point_interpolated_ap_matches_the_hand_computation() -> None:
    matched = ap.match_images(DETECTIONS, REFERENCES, [PERSON, CAR])
    # precision 1, 1/2, 2/3, 2/4, 3/5 at recall 1/3, 1/3, 2/3, 2/3, 1: the envelope is 1, 2/3, 3/5 on the thirds.
    assert ap.average_precision(matched, CAR) == pytest.approx(1 / 3 + 2 / 9 + 1 / 5)
    # (11-point interpolation would give (4 + 3 * 2/3 + 4 * 3/5) / 11 = 0.7636..., a different number.)
    assert ap.average_precision(matched, CAR) != pytest.approx(8.4 / 11, abs=1e-3)
    assert np.isnan(ap.average_precision(matched, PERSON))  # no references
    assert ap.recall_at(matched, 0.65) == pytest.approx(2 / 3)  # the two hits scoring >= 0.65


def test_classes_with_fewer_than_five_references_are_left_out_of_the_map() -> None:
    def image(people: int, cars: int) -> Detections:
        return _boxes(*[(PERSON, 1.0, (40 * i, 0, 40 * i + 20, 40)) for i in range(people)],
                      *[(CAR, 1.0, (40 * i, 100, 40 * i + 30, 120)) for i in range(cars)])

    references = [image(2, 3), image(2, 2)]
    counts = ap.reference_counts(references, [PERSON, CAR])
    assert counts == {PERSON: 4, CAR: 5}
    assert ap.evaluated_classes(counts) == [CAR]
    found = [r.select(r.classes == CAR) for r in references]  # every car found, no person
    matched = ap.match_images(found, references, [PERSON, CAR])
    assert ap.mean_average_precision(matched, ap.evaluated_classes(counts)) == 1.0
    assert ap.mean_average_precision(matched, [PERSON, CAR]) == 0.5


def test_references_found_exactly_give_map_one() -> None:
    """The clean-visible sanity check: detections against their own high-scoring subset score exactly 1."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(4):
        corners = rng.uniform(0, 400, (6, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(20, 60, (6, 2))], axis=1) + np.arange(6)[:, None] * 500
        images.append(Detections(boxes.astype(np.float32), rng.uniform(0.01, 1, 6).astype(np.float32),
                                 rng.choice([PERSON, CAR], 6)))
    references = [d.above(0.35) for d in images]
    matched = ap.match_images(images, references, [PERSON, CAR])
    assert ap.mean_average_precision(matched, [PERSON, CAR]) == 1.0


def test_bootstrap_resamples_are_seeded_and_reweighting_equals_duplicating_images() -> None:
    first, again = ap.bootstrap_weights(7, 1000, seed=3), ap.bootstrap_weights(7, 1000, seed=3)
    assert np.array_equal(first, again) and not np.array_equal(first, ap.bootstrap_weights(7, 1000, seed=4))
    assert np.all(first.sum(axis=1) == 7)

    matched = ap.match_images(DETECTIONS, REFERENCES, [CAR])
    duplicated = ap.match_images([DETECTIONS[0], DETECTIONS[0], DETECTIONS[1]], [REFERENCES[0], REFERENCES[0],
                                                                                 REFERENCES[1]], [CAR])
    weighted = ap.bootstrap_map(matched, [CAR], np.array([[2.0, 1.0], [1.0, 1.0]]))
    assert weighted[0] == pytest.approx(ap.mean_average_precision(duplicated, [CAR]))
    assert weighted[1] == pytest.approx(ap.mean_average_precision(matched, [CAR]))

    weights = ap.bootstrap_weights(2, 1000, seed=0)
    empty = ap.match_images([Detections.empty()] * 2, REFERENCES, [CAR])
    samples = ap.bootstrap_map(matched, [CAR], weights), ap.bootstrap_map(empty, [CAR], weights)
    low, high = ap.paired_interval(*samples)
    assert (low, high) == ap.paired_interval(*samples)
    assert 0.0 < low <= ap.mean_average_precision(matched, [CAR]) <= high <= 1.0
    assert ap.paired_interval(samples[0], samples[0]) == (0.0, 0.0)


def test_yolo_labels_are_read_as_pixel_boxes_of_the_scored_classes(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "classes.txt").write_text("People\nCar\nLamp\nMotor_bike\n")
    (labels / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.1 0.1 0.3 0.3\n2 0.5 0.5 0.1 0.1\n\n")
    (labels / "bad.txt").write_text("1 0.5 0.5\n")
    assert class_map(["People", "Car", "Lamp", "Motor_bike"]) == {0: PERSON, 1: CAR, 3: 3}

    found = YoloLabels.find(tmp_path)
    boxes = found.read("a", height=100, width=200)
    assert boxes.classes.tolist() == [PERSON, CAR]
    np.testing.assert_allclose(boxes.boxes, [[80, 30, 120, 70], [40, 70, 60, 80]], atol=1e-4)
    assert len(found.read("unlabelled", 100, 200)) == 0  # YOLO convention: no file, no objects
    with pytest.raises(FusionProxyError, match="bad.txt:1"):
        found.read("bad", 100, 200)
    assert YoloLabels.find(tmp_path / "nowhere") is None
    (labels / "classes.txt").unlink()
    with pytest.raises(FusionProxyError, match="classes.txt"):
        YoloLabels.find(tmp_path)


def test_slow_methods_and_folders_are_limited_to_their_levels() -> None:
    teacher = TeacherMethod("t", "teacher:t:4")
    baseline = BaselineMethod("average", "baseline:average", baseline="average")
    by_name = {"t": teacher, "average": baseline}
    slow = (LEVELS["none"], LEVELS["fog-0.1"])
    settings = DetectionSettings(detector=None, name="d", slow_levels=slow)
    assert settings.levels_of(teacher, by_name) == list(slow)
    assert settings.levels_of(MeanMethod("m", "mean:t+average", parts=("t", "average")), by_name) == list(slow)
    assert settings.levels_of(baseline, by_name) == list(LEVELS.values())
    folder = FolderMethod("peer", "folder:peer", runs=False, directory=Path("peer"))
    assert settings.levels_of(folder, by_name) == [LEVELS["none"]]  # outputs exist for clean inputs only
    assert [level.name for level in DetectionSettings(None, "d").levels_of(teacher, by_name)] == list(LEVELS)

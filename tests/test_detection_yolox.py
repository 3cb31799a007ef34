"""The real YOLOX-Nano ONNX export decoded on a real RoadScene frame: car boxes where the cars are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionproxy.detection import load_detector
from fusionproxy.detection.yolox import YoloxDetector
from fusionproxy.errors import FusionProxyError
from fusionproxy.io import read_raw

pytestmark = pytest.mark.data  # the detector in ../shared/models, a RoadScene frame

CAR = 2
# A dusk street with parked cars along both kerbs (9 of them clearly visible, none above the horizon).
STEM = "FLIR_06392"


@pytest.fixture(scope="module")
def detector_path(datasets_dir: Path) -> Path:
    path = datasets_dir.parent / "models" / "yolox_nano_coco.onnx"
    assert path.is_file(), f"expected the shared detector at {path}"
    return path


def test_cars_are_found_where_the_cars_are(detector_path: Path, datasets_dir: Path) -> None:
    detector = load_detector(detector_path)  # format detected from the output shape
    assert isinstance(detector, YoloxDetector)
    frame = read_raw(datasets_dir / "roadscene" / "test" / "vi" / f"{STEM}.jpg")
    height, width = frame.shape[:2]
    found = detector.detect(frame, 0.01)
    assert np.all(np.diff(found.scores) <= 0)  # NMS keeps them in descending score order
    cars = found.select((found.classes == CAR) & (found.scores >= 0.35))
    assert len(cars) >= 6
    x1, y1, x2, y2 = cars.boxes.T
    assert np.all((x1 >= 0) & (y1 >= 0) & (x2 <= width) & (y2 <= height))
    box_w, box_h = x2 - x1, y2 - y1
    assert np.all((box_w > 8) & (box_w < width / 2) & (box_h > 6) & (box_h < height / 2))
    assert np.all((box_w / box_h > 0.7) & (box_w / box_h < 3.0))  # car-shaped, seen from behind or aside
    assert np.all((y1 + y2) / 2 > 0.5 * height)  # on the road, in the lower half
    # The nearest car, bottom right, is the surest.
    best = cars.boxes[0]
    assert cars.scores[0] > 0.8 and best[0] > width / 2 and best[3] > 0.9 * height


def test_an_unknown_format_is_refused(detector_path: Path) -> None:
    with pytest.raises(FusionProxyError, match="unknown detector format 'yolov9'"):
        load_detector(detector_path, "yolov9")
    with pytest.raises(FusionProxyError, match="not found"):
        load_detector(detector_path.with_name("missing.onnx"))

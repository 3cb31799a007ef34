"""YOLO-format labels beside a pair folder, as MSRS, M3FD and LLVIP detection splits circulate them.

`<dataset>/labels/<stem>.txt`: one object per line, `class cx cy w h` with the box normalised to [0, 1] by the
image size (extra fields such as polygon points are ignored); `<dataset>/labels/classes.txt`: the class names,
line k naming class k. Names are mapped onto the scored COCO road classes (`ROAD_CLASSES`) through `ALIASES`;
objects of other classes (M3FD's lamps, say) are left out. A stem without a label file has no objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FusionProxyError
from .boxes import ROAD_CLASSES, Detections

LABEL_DIR = "labels"
CLASS_FILE = "classes.txt"

# Spellings of the scored classes in the public IR-visible detection sets (compared lower-case, without spaces,
# underscores and hyphens).
ALIASES: dict[str, int] = {
    **{name: coco_id for coco_id, name in ROAD_CLASSES.items()},
    "people": 0, "pedestrian": 0, "bike": 1, "motorbike": 3, "motor": 3,
}


def _normalised(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " _-")


def class_map(names: list[str]) -> dict[int, int]:
    """Label class index -> COCO id, for the names that are scored road classes."""
    return {index: ALIASES[_normalised(name)] for index, name in enumerate(names) if _normalised(name) in ALIASES}


class YoloLabels:
    """The labels of one dataset folder; `YoloLabels.find(root)` is None when the folder has none."""

    def __init__(self, directory: Path) -> None:
        names_path = directory / CLASS_FILE
        if not names_path.is_file():
            raise FusionProxyError(f"{directory}: YOLO labels need {CLASS_FILE} (one class name per line)")
        names = [line.strip() for line in names_path.read_text().splitlines() if line.strip()]
        self.directory, self.classes = directory, class_map(names)
        if not self.classes:
            raise FusionProxyError(f"{names_path}: none of {', '.join(names)} is a scored class "
                                   f"({', '.join(ROAD_CLASSES.values())})")

    @staticmethod
    def find(root: Path) -> YoloLabels | None:
        directory = root / LABEL_DIR
        return YoloLabels(directory) if directory.is_dir() else None

    def read(self, stem: str, height: int, width: int) -> Detections:
        """The scored objects of `stem` as pixel boxes of an image of `height` x `width` (scores 1)."""
        return read_yolo_file(self.directory / f"{stem}.txt", self.classes, height, width)


def read_yolo_file(path: Path, classes: dict[int, int], height: int, width: int) -> Detections:
    if not path.is_file():
        return Detections.empty()
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            label, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
        except ValueError:
            raise FusionProxyError(f"{path}:{number}: expected 'class cx cy w h', got '{line.strip()}'") from None
        if label in classes:
            rows.append((classes[label], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    if not rows:
        return Detections.empty()
    table = np.array(rows, dtype=np.float64)
    boxes = (table[:, 1:] * np.array([width, height, width, height])).astype(np.float32)
    return Detections(boxes, np.ones(len(rows), np.float32), table[:, 0].astype(np.int64))

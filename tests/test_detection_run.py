"""`fusionproxy evaluate --detector` end to end on real RoadScene pairs: rows, levels, sanity check, resume."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from fusionproxy.cli import app
from fusionproxy.detection import ROAD_CLASSES, load_detector
from fusionproxy.evaluate import evaluate, parse_method
from fusionproxy.evaluate.detection import IR_ROW, VISIBLE_ROW, DetectionSettings
from fusionproxy.evaluate.figures import GAP, LABEL_HEIGHT
from fusionproxy.io import read_raw
from fusionproxy.visibility import parse_levels

pytestmark = pytest.mark.data  # RoadScene pairs, ../shared/models and ../shared/peers

# Daytime frames with cars and people (FLIR_08248: four pedestrians).
STEMS = ("FLIR_06392", "FLIR_05005", "FLIR_08248")


@pytest.fixture(scope="module")
def detector_path(datasets_dir: Path) -> Path:
    return datasets_dir.parent / "models" / "yolox_nano_coco.onnx"


@pytest.fixture
def pairs(datasets_dir: Path, tmp_path: Path) -> Path:
    """The three pairs in a folder named like the peers' dataset folder, so folder methods find them."""
    source, root = datasets_dir / "roadscene" / "test", tmp_path / "roadscene"
    for stem in STEMS:
        for kind in ("ir", "vi"):
            (root / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(source / kind / f"{stem}.jpg", root / kind)
    return root


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_cli_detection_table_on_real_pairs(pairs: Path, detector_path: Path, datasets_dir: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    peers = datasets_dir.parent / "peers" / "seafusion"
    args = ["evaluate", "-d", str(pairs), "--no-baselines", "-m", "baseline:average", "-m", f"folder:{peers}",
            "--convention", "cddfuse", "--out", str(out), "--grid", STEMS[0],
            "--detector", str(detector_path), "--detector-levels", "none,night-0.05"]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert "mAP50 1.000, as it must" in cli.output

    rows = _csv(out / "detection.csv")
    assert [(r["level"], r["row"]) for r in rows] == [
        ("none", VISIBLE_ROW), ("none", IR_ROW), ("none", "average"), ("none", "seafusion"),
        ("night-0.05", VISIBLE_ROW), ("night-0.05", IR_ROW), ("night-0.05", "average"),  # folders: clean only
    ]
    score = {(r["level"], r["row"]): r for r in rows}
    assert float(score[("none", VISIBLE_ROW)]["map50"]) == 1.0  # pseudo-references reproduced exactly
    assert score[("none", VISIBLE_ROW)]["lift"] == ""
    assert float(score[("none", IR_ROW)]["map50"]) == float(score[("night-0.05", IR_ROW)]["map50"])
    dark = score[("night-0.05", "average")]
    assert float(dark["map50"]) > float(score[("night-0.05", VISIBLE_ROW)]["map50"])  # IR rescues the dark frame
    assert float(dark["lift_low"]) <= float(dark["lift"]) <= float(dark["lift_high"])
    assert all(int(r["images"]) == 3 for r in rows)

    summary = (out / "summary.md").read_text()
    assert "# Detection: frozen detector `yolox_nano_coco.onnx`" in summary
    assert "| row | none | night-0.05 |" in summary and "| seafusion | " in summary
    assert (out / "fused" / "average" / "roadscene" / "night-0.05" / f"{STEMS[1]}.png").is_file()
    figure = cv2.imread(str(out / "detection" / "roadscene" / f"{STEMS[0]}.png"))
    height, width = read_raw(pairs / "vi" / f"{STEMS[0]}.jpg").shape[:2]
    assert figure.shape[:2] == (2 * (LABEL_HEIGHT + height) + GAP, 3 * width + 2 * GAP)  # 2 levels x 3 panels

    again = CliRunner().invoke(app, args)  # resumes from the cached outputs, same degraded frames
    assert again.exit_code == 0, again.output
    assert _csv(out / "detection.csv") == rows


def test_yolo_labels_replace_the_pseudo_references(pairs: Path, detector_path: Path, tmp_path: Path) -> None:
    """Labels equal to the clean-frame detections: the clean visible frame scores 1 against them too."""
    detector = load_detector(detector_path)
    names = ["bicycle", "car", "People", "truck", "bus", "motorcycle"]
    labels = pairs / "labels"
    labels.mkdir()
    (labels / "classes.txt").write_text("\n".join(names) + "\n")
    coco_to_label = {0: 2, 1: 0, 2: 1, 3: 5, 5: 4, 7: 3}  # COCO id -> line of classes.txt
    for stem in STEMS:
        frame = read_raw(pairs / "vi" / f"{stem}.jpg")
        height, width = frame.shape[:2]
        found = detector.detect(frame, 0.35).of_classes(ROAD_CLASSES)
        lines = [f"{coco_to_label[int(c)]} {(x1 + x2) / 2 / width:.9f} {(y1 + y2) / 2 / height:.9f} "
                 f"{(x2 - x1) / width:.9f} {(y2 - y1) / height:.9f}" for (x1, y1, x2, y2), c in
                 zip(found.boxes.tolist(), found.classes)]
        (labels / f"{stem}.txt").write_text("\n".join(lines) + "\n")

    settings = DetectionSettings(detector, "yolox", tuple(parse_levels("none")))
    elsewhere = tmp_path / "other-peer"  # a folder method with outputs for other datasets only
    (elsewhere / "tno").mkdir(parents=True)
    methods = [parse_method("baseline:max"), parse_method(f"folder:{elsewhere}")]
    result = evaluate([pairs], methods, tmp_path / "out", conventions=(), progress=False, grid=[], detection=settings)
    rows = {r["row"]: r for r in _csv(tmp_path / "out" / "detection.csv")}
    assert float(rows[VISIBLE_ROW]["map50"]) == pytest.approx(1.0)
    assert set(rows) == {VISIBLE_ROW, IR_ROW, "max"}  # no 0.000 row for the folder without this dataset
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "References: YOLO labels" in summary and "Sanity check" not in summary
    assert all("other-peer" in failure for failure in result.failures)

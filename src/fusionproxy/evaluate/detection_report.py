"""The detection study's outputs: detection.csv and the Markdown section of summary.md."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, fields
from pathlib import Path

from ..detection import ROAD_CLASSES
from ..detection.average_precision import MIN_REFERENCES, MIN_SCORE, REFERENCE_SCORE
from .detection import DetectionScore, DetectionStudy, sanity_line


def write_csv(study: DetectionStudy, path: Path) -> Path:
    """One line per (dataset, level, row); empty cells for undefined values (no lift for the visible frame)."""
    columns = [f.name for f in fields(DetectionScore)]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for score in study.scores:
            writer.writerow({k: _cell(v) for k, v in asdict(score).items()})
    return path


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _value(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.3f}"


def markdown(study: DetectionStudy) -> str:
    """Per dataset: an overview (mAP50 and lift per level, one column per level) and the full table."""
    lines = ["", f"# Detection: frozen detector `{study.detector}`", "",
             f"Rows: the visible frame at each visibility level (`fusionproxy.visibility`, seeded per image), the "
             f"IR frame (3-channel grey, the same at every level) and each method fusing IR with the degraded "
             f"visible frame (precomputed folders: clean inputs only). mAP50: VOC all-point AP at IoU 0.5 of the "
             f"detections scoring >= {MIN_SCORE} pooled over images, averaged over the scored classes with at "
             f"least {MIN_REFERENCES} references. Recall: share of the references found at score >= "
             f"{REFERENCE_SCORE}. Lift: mAP50 minus the visible frame's at the same level, [95% interval] from "
             f"a paired bootstrap over images."]
    for reference in study.references:
        dataset = reference.dataset
        counts = ", ".join(f"{ROAD_CLASSES[c]} {n}" for c, n in reference.counts.items() if n)
        used = ", ".join(ROAD_CLASSES[c] for c in reference.classes) or "none"
        source = ("YOLO labels" if reference.labelled else
                  f"pseudo-references: the detector's detections scoring >= {REFERENCE_SCORE} on the clean visible "
                  "frame")
        lines += ["", f"## {dataset}", "", f"References: {source}; {counts or 'none'}. mAP50 over: {used}."]
        sanity = sanity_line(study, dataset)
        if sanity:
            lines += ["", sanity]
        scores = [s for s in study.scores if s.dataset == dataset]
        lines += ["", f"### {dataset}: mAP50 (lift over the visible frame)", "", _overview(scores)]
        lines += ["", f"### {dataset}: all columns", "", _detail(scores)]
    return "\n".join(lines) + "\n"


def _overview(scores: list[DetectionScore]) -> str:
    levels = list(dict.fromkeys(s.level for s in scores))
    rows = list(dict.fromkeys(s.row for s in scores))
    cell = {(s.row, s.level): s for s in scores}
    lines = ["| row | " + " | ".join(levels) + " |", "| --- |" + " ---: |" * len(levels)]
    for row in rows:
        cells = []
        for level in levels:
            score = cell.get((row, level))
            text = "" if score is None else _value(score.map50)
            if score is not None and not math.isnan(score.lift):
                text += f" ({_signed(score.lift)})"
            cells.append(text)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _detail(scores: list[DetectionScore]) -> str:
    lines = [f"| level | row | mAP50 | person AP50 | recall@{REFERENCE_SCORE} | lift [95% interval] |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for s in scores:
        lift = "" if math.isnan(s.lift) else f"{_signed(s.lift)} [{_signed(s.lift_low)}, {_signed(s.lift_high)}]"
        lines.append(f"| {s.level} | {s.row} | {_value(s.map50)} | {_value(s.person_ap50)} | {_value(s.recall)} | "
                     f"{lift} |")
    return "\n".join(lines)

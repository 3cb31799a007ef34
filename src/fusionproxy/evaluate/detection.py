"""The detection study of `fusionproxy evaluate --detector`: does a frozen RGB detector find more in the fused
frame than in the visible one, as the visible frame degrades?

For every pair and visibility level (`fusionproxy.visibility`), the visible frame is degraded with a seed from
(run seed, dataset, stem, level), so every method sees the same frame on every rerun; each runnable method fuses
the IR frame with it (cached as fused/<method>/<dataset>/<level>/<stem>.png, level `none` sharing the aligned
outputs of the metric tables), and the detector runs on the degraded visible frame, on the IR frame (3-channel
grey, the same at every level) and on every output. References are the dataset's YOLO labels
(`fusionproxy.detection.labels`), else the detector's own detections scoring >= 0.35 on the clean visible frame.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.progress import Progress

from ..detection import ROAD_CLASSES, Detections, Detector
from ..detection import average_precision as ap
from ..detection.average_precision import MIN_SCORE, REFERENCE_SCORE
from ..detection.drawing import draw_detections
from ..detection.labels import YoloLabels
from ..io import ImageReadError, PairListing
from ..visibility import LEVELS, Degradation, degrade_image
from . import figures
from .methods import FolderMethod, MeanMethod, Method, TeacherMethod
from .outputs import Dataset, _read_pair, _Run, _uint8
from .perturb import ALIGNED, stable_seed

VISIBLE_ROW = "visible frame"  # the space keeps them apart from method names (letters, digits, . _ + -)
IR_ROW = "IR frame"
RESAMPLES = 1000
PERSON = 0
CLEAN = LEVELS["none"]


@dataclass(frozen=True)
class DetectionSettings:
    """`detector`: any object with `detect(rgb_uint8, min_score)` (`fusionproxy.detection.load_detector`);
    `name`: how the tables call it. `levels`: the visibility levels of every row; `slow_levels`: the subset for
    teachers and means over them (seconds per frame), None = all of `levels`. Precomputed folders exist for
    clean inputs only: level none. `resamples`: of the paired bootstrap."""

    detector: Detector
    name: str
    levels: tuple[Degradation, ...] = tuple(LEVELS.values())
    slow_levels: tuple[Degradation, ...] | None = None
    resamples: int = RESAMPLES

    def levels_of(self, method: Method, by_name: dict[str, Method]) -> list[Degradation]:
        if isinstance(method, FolderMethod):
            return [level for level in self.levels if level == CLEAN]
        if self.slow_levels is not None and _slow(method, by_name):
            return [level for level in self.levels if level in self.slow_levels]
        return list(self.levels)


def _slow(method: Method, by_name: dict[str, Method]) -> bool:
    if isinstance(method, MeanMethod):
        return any(_slow(by_name[part], by_name) for part in method.parts)
    return isinstance(method, TeacherMethod)


@dataclass(frozen=True)
class DetectionScore:
    """One row of detection.csv: a frame kind (`row`) at one visibility level of one dataset. `lift`: mAP50
    minus that of the visible frame at the same level, with its paired-bootstrap 95% interval."""

    dataset: str
    level: str
    row: str
    images: int
    map50: float
    person_ap50: float
    recall: float
    lift: float = math.nan
    lift_low: float = math.nan
    lift_high: float = math.nan


@dataclass
class DatasetReferences:
    """What the scores of one dataset were measured against."""

    dataset: str
    labelled: bool
    counts: dict[int, int]  # references per scored class
    classes: list[int]  # the classes the mAP averages (>= MIN_REFERENCES references)


@dataclass
class DetectionStudy:
    """What `detection_study` measured, for `detection_report`; `figures`: the PNGs it wrote."""

    detector: str
    references: list[DatasetReferences] = field(default_factory=list)
    scores: list[DetectionScore] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def detection_study(run: _Run, datasets: Sequence[Dataset], listings: dict[str, PairListing],
                    settings: DetectionSettings, figure_stems: dict[str, list[str]], bar: Progress) -> DetectionStudy:
    """Detect on every (row, level, pair) and score each row; writes the box figures of `figure_stems`."""
    study = DetectionStudy(settings.name)
    with bar:
        task = bar.add_task("detecting", total=len(settings.levels) * sum(len(listings[d.name].pairs)
                                                                          for d in datasets))
        for dataset in datasets:
            collected = _Collector(run, dataset, settings, figure_stems.get(dataset.name, []))
            for stem, ir_path, vis_path in listings[dataset.name].pairs:
                bar.update(task, description=f"detecting {dataset.name}/{stem}")
                try:
                    ir, vis = _read_pair(ir_path, vis_path)
                except ImageReadError:  # reported while scoring
                    bar.advance(task, len(settings.levels))
                    continue
                collected.add_pair(stem, ir, vis, lambda: bar.advance(task))
            seed = stable_seed(run.seed, "bootstrap", dataset.name)
            references, scores = _score(collected, settings.resamples, seed)
            study.references.append(references)
            study.scores += scores
            study.figures += collected.figures
            sanity = sanity_line(study, dataset.name)
            if sanity:
                run.log(sanity)
    return study


class _Collector:
    """Per (row, level name): the detections on each pair of one dataset, in pair order; and the figures."""

    def __init__(self, run: _Run, dataset: Dataset, settings: DetectionSettings, figure_stems: list[str]) -> None:
        self.run, self.dataset, self.settings, self.figure_stems = run, dataset, settings, figure_stems
        self.labels = YoloLabels.find(dataset.root)
        self.references: list[Detections] = []
        self.found: dict[tuple[str, str], list[Detections]] = defaultdict(list)
        # (row, level name) pairs with at least one output: a folder without this dataset's files gets no row.
        self.produced: set[tuple[str, str]] = {(VISIBLE_ROW, lv.name) for lv in settings.levels}
        self.produced |= {(IR_ROW, lv.name) for lv in settings.levels}
        self.methods = [(m, settings.levels_of(m, run.by_name)) for m in run.methods]
        # The method whose boxes the figures show: the first that runs (not a folder of clean-input outputs).
        self.featured = next((m for m in run.methods if m.runs), run.methods[0] if run.methods else None)
        self.figures: list[Path] = []

    def detect(self, image: np.ndarray) -> Detections:
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        return self.settings.detector.detect(rgb, MIN_SCORE).of_classes(ROAD_CLASSES)

    def add_pair(self, stem: str, ir: np.ndarray, vis: np.ndarray, advance: Callable[[], None]) -> None:
        ir8, vis8 = _uint8(ir), _uint8(vis)
        clean = self.detect(vis8)
        references = (self.labels.read(stem, *ir.shape) if self.labels is not None
                      else clean.above(REFERENCE_SCORE))
        self.references.append(references)
        on_ir = self.detect(ir8)
        figure_rows = []
        for level in self.settings.levels:
            seen = vis8 if level == CLEAN else degrade_image(
                vis8, level, stable_seed(self.run.seed, "visibility", self.dataset.name, stem, level.name))
            self.found[(VISIBLE_ROW, level.name)].append(clean if level == CLEAN else self.detect(seen))
            self.found[(IR_ROW, level.name)].append(on_ir)
            vis_in = vis if level == CLEAN else seen.astype(np.float32) / 255.0
            for method, levels in self.methods:
                if level not in levels:
                    continue
                output = self.run.output(method, self.dataset, stem, ALIGNED, ir, vis_in, level.name)
                found = self.detect(output[0]) if output is not None else Detections.empty()
                self.found[(method.name, level.name)].append(found)
                if output is not None:
                    self.produced.add((method.name, level.name))
                if method is self.featured and output is not None and stem in self.figure_stems:
                    figure_rows.append(self._figure_row(level, seen, output[0], vis8, references))
            advance()
        if figure_rows:
            path = self.run.out_dir / "detection" / self.dataset.name / f"{stem}.png"
            figures.stacked_grids(figure_rows, path)
            self.figures.append(path)

    def _figure_row(self, level: Degradation, seen: np.ndarray, fused: np.ndarray, clean: np.ndarray,
                    references: Detections) -> list[tuple[str, np.ndarray]]:
        """degraded visible | fused | reference on the clean frame; detections at the 0.35 operating point."""
        visible = self.found[(VISIBLE_ROW, level.name)][-1].above(REFERENCE_SCORE)
        output = self.found[(self.featured.name, level.name)][-1].above(REFERENCE_SCORE)
        source = "labels" if self.labels is not None else "clean visible"
        return [
            (f"visible, {level.name}", draw_detections(seen, visible)),
            (f"{self.featured.name}, {level.name}", draw_detections(fused, output)),
            (f"reference ({source})", draw_detections(clean, references, show_scores=False)),
        ]


def _score(collected: _Collector, resamples: int, seed: int) -> tuple[DatasetReferences, list[DetectionScore]]:
    """Every row at every level against the references, with the paired bootstrap over the dataset's images."""
    class_ids = list(ROAD_CLASSES)
    counts = ap.reference_counts(collected.references, class_ids)
    classes = ap.evaluated_classes(counts)
    summary = DatasetReferences(collected.dataset.name, collected.labels is not None, counts, classes)
    images = len(collected.references)
    if not images:
        return summary, []
    weights = ap.bootstrap_weights(images, resamples, seed)
    rows = [VISIBLE_ROW, IR_ROW, *(m.name for m, _ in collected.methods)]
    scores = []
    for level in collected.settings.levels:
        base = ap.match_images(collected.found[(VISIBLE_ROW, level.name)], collected.references, class_ids)
        base_map, base_samples = ap.mean_average_precision(base, classes), ap.bootstrap_map(base, classes, weights)
        for row in rows:
            if (row, level.name) not in collected.produced:
                continue  # a folder or slow method not run at this level, or a folder without this dataset
            found = ap.match_images(collected.found[(row, level.name)], collected.references, class_ids)
            score = DetectionScore(
                collected.dataset.name, level.name, row, images,
                map50=ap.mean_average_precision(found, classes),
                person_ap50=ap.average_precision(found, PERSON),
                recall=ap.recall_at(found, REFERENCE_SCORE),
            )
            if row != VISIBLE_ROW:
                low, high = ap.paired_interval(ap.bootstrap_map(found, classes, weights), base_samples)
                score = replace(score, lift=score.map50 - base_map, lift_low=low, lift_high=high)
            scores.append(score)
    return summary, scores


def sanity_line(study: DetectionStudy, dataset: str) -> str | None:
    """For pseudo-references: the clean visible frame must reproduce them exactly (mAP50 1.000)."""
    reference = next((r for r in study.references if r.dataset == dataset), None)
    clean = next((s for s in study.scores if s.dataset == dataset and s.level == "none" and s.row == VISIBLE_ROW),
                 None)
    if reference is None or reference.labelled or clean is None:
        return None
    verdict = "as it must" if clean.map50 == 1.0 else "WRONG: it must be exactly 1"
    return (f"Sanity check ({dataset}): the clean visible frame against its own pseudo-references: "
            f"mAP50 {clean.map50:.3f}, {verdict}.")

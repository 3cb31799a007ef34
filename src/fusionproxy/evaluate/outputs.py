"""What one evaluation works on: its datasets, and every method's fused output per pair and perturbation,
taken from a folder, from the output cache, or by running the method (shared by the metrics and detection runs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FusionProxyError, MissingWeightsError
from ..io import ImageReadError, read_ir, read_raw, read_vis, to_unit_float
from ..misalignment import MisalignmentRange
from . import report
from .methods import FolderMethod, MeanMethod, Method
from .perturb import ALIGNED, perturb_ir, ssim_against, stable_seed
from .scoring import Scorer
from .storage import KEY_COLUMNS, ResultStore, load_fused, save_fused

SPLIT_NAMES = ("test", "train", "val", "valid", "validation")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path


def parse_dataset(text: str) -> Dataset:
    """`[NAME=]DIR`; the default name is the folder name, or `<parent>-<split>` for split folders like test/."""
    name, _, directory = text.partition("=") if "=" in text else ("", "", text)
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise FusionProxyError(f"{root}: dataset folder not found")
    if not name:
        resolved = root.resolve()
        name = f"{resolved.parent.name}-{resolved.name}" if resolved.name in SPLIT_NAMES else resolved.name
    return Dataset(name, root)


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def level_slug(level: MisalignmentRange) -> str:
    return "aligned" if level == ALIGNED else f"t{level.max_translation:g}-r{level.max_rotation:g}"


def _label(level: MisalignmentRange, visibility: str) -> str:
    return level.label if visibility == "none" else visibility


class _Run:
    """State of one evaluation: the store, the cache folder, the scorer, the failures."""

    def __init__(self, out_dir: Path, methods: list[Method], levels: Sequence[MisalignmentRange], seed: int,
                 score: Scorer, store: ResultStore, log: Callable[[str], None]) -> None:
        self.out_dir, self.methods, self.levels, self.seed = out_dir, methods, levels, seed
        self.score, self.store, self.log = score, store, log
        self.failures: list[str] = []
        self.by_name = {m.name: m for m in methods}

    def fail(self, message: str) -> None:
        self.failures.append(message)
        self.log(message)

    def fused_path(self, method: Method, dataset: Dataset, stem: str, level: MisalignmentRange,
                   visibility: str = "none") -> Path:
        """`visibility`: the `fusionproxy.visibility` level the visible input was degraded to (detection study)."""
        slug = level_slug(level) if visibility == "none" else visibility
        return self.out_dir / "fused" / method.name / dataset.name / slug / f"{stem}.png"

    def levels_of(self, method: Method) -> Sequence[MisalignmentRange]:
        # Precomputed outputs exist only for the aligned inputs.
        return self.levels if method.runs else (ALIGNED,)

    def pending(self, dataset: Dataset, stem: str) -> bool:
        return any(
            (m.name, dataset.name, stem, level.label) not in self.store.finished
            for m in self.methods for level in self.levels_of(m)
        )

    def output(self, method: Method, dataset: Dataset, stem: str, level: MisalignmentRange,
               ir: np.ndarray, vis: np.ndarray, visibility: str = "none") -> tuple[np.ndarray, float] | None:
        """(uint8 output, seconds) from the folder, the cache, or by running the method; None if missing."""
        if isinstance(method, FolderMethod):
            path = method.find(dataset.name, stem)
            if path is None:
                self.fail(f"{method.directory}: no fused image for {dataset.name}/{stem} (method '{method.name}')")
                return None
            try:
                image = _uint8(to_unit_float(read_raw(path)))
            except ImageReadError as error:
                self.fail(str(error))
                return None
            if image.shape[:2] != ir.shape:
                self.fail(f"{path}: size {image.shape[1]}x{image.shape[0]} differs from its sources "
                          f"{ir.shape[1]}x{ir.shape[0]}")
                return None
            return image[..., :3] if image.ndim == 3 else image, float("nan")
        path = self.fused_path(method, dataset, stem, level, visibility)
        cached = load_fused(path)
        if cached is not None:
            return cached
        if isinstance(method, MeanMethod):
            return self.mean_output(method, dataset, stem, level, ir, vis, visibility)
        method.prepare()
        moved = perturb_ir(ir, level, stable_seed(self.seed, dataset.name, stem, level.label))
        start = time.perf_counter()
        try:
            fused = method.fuse(moved, vis, stable_seed(self.seed, dataset.name, stem))
        except MissingWeightsError:
            raise  # the same for every image: stop with its message
        except FusionProxyError as error:  # this input is unusable for this method; go on with the others
            self.fail(f"{dataset.name}/{stem} ({method.name}, {_label(level, visibility)}): {error}")
            return None
        seconds = time.perf_counter() - start
        if fused.shape != vis.shape:
            raise RuntimeError(f"method '{method.name}' returned shape {fused.shape} for input {vis.shape}")
        image = _uint8(fused)
        save_fused(path, image, seconds)
        return image, seconds

    def mean_output(self, method: MeanMethod, dataset: Dataset, stem: str, level: MisalignmentRange,
                    ir: np.ndarray, vis: np.ndarray, visibility: str = "none") -> tuple[np.ndarray, float] | None:
        """The mean of the parts' (cached or computed) outputs; its time is the sum of theirs."""
        outputs = [self.output(self.by_name[part], dataset, stem, level, ir, vis, visibility) for part in method.parts]
        if any(output is None for output in outputs):
            self.fail(f"{dataset.name}/{stem} ({method.name}, {_label(level, visibility)}): a part of the mean has "
                      "no output")
            return None
        image = _uint8(np.mean([o[0].astype(np.float32) / 255.0 for o in outputs], axis=0))
        seconds = float(sum(o[1] for o in outputs))
        save_fused(self.fused_path(method, dataset, stem, level, visibility), image, seconds)
        return image, seconds

    def evaluate_pair(self, dataset: Dataset, stem: str, ir: np.ndarray, vis: np.ndarray,
                      advance: Callable[[], None]) -> None:
        ir8, vis8 = _uint8(ir), _uint8(vis)
        for method in self.methods:
            aligned = None
            levels = self.levels_of(method)
            for level in levels:  # aligned first: the SSIM reference of the others
                key = (method.name, dataset.name, stem, level.label)
                result = self.output(method, dataset, stem, level, ir, vis)
                if result is None:  # reported; without the aligned output the perturbed ones are skipped too
                    for _ in range(len(levels) if level == ALIGNED else 1):
                        advance()
                    if level == ALIGNED:
                        break
                    continue
                image, seconds = result
                if level == ALIGNED:
                    aligned = image
                if key not in self.store.finished:
                    # Scores use the aligned sources: a misalignment-robust method reconstructs the aligned scene.
                    values, problems = self.score(image, ir8, vis8)
                    for problem in problems:
                        self.fail(f"{dataset.name}/{stem} ({method.name}, {level.label}): {problem}")
                    row = dict(zip(KEY_COLUMNS, key), seconds=seconds, **values)
                    if report.SSIM_COLUMN in self.store.columns:
                        row[report.SSIM_COLUMN] = 1.0 if level == ALIGNED else ssim_against(image, aligned)
                    self.store.append(row)
                advance()


def _read_pair(ir_path: Path, vis_path: Path) -> tuple[np.ndarray, np.ndarray]:
    ir, vis = read_ir(ir_path), read_vis(vis_path)
    if ir.shape != vis.shape[:2]:
        raise ImageReadError(
            f"{ir_path}: size {ir.shape[1]}x{ir.shape[0]} differs from its partner {vis_path} "
            f"({vis.shape[1]}x{vis.shape[0]})"
        )
    return ir, vis

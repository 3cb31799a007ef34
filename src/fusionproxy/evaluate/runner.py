"""`evaluate(...)`: run every method on every pair, score, and write the CSV, tables and figures.

Layout of the output folder (see `storage.py` for what makes it resumable):
  results.csv, summary.md, chart_<convention>.png, misalignment.png (with perturbations),
  grids/<dataset>/<stem>.png, fused/<method>/<dataset>/<perturbation>/<stem>.png, run.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import FusionProxyError
from ..io import ImageReadError, PairListing, find_dataset_pairs, read_raw, to_unit_float
from ..misalignment import MisalignmentRange
from . import figures, report
from .methods import FolderMethod, MeanMethod, Method
from .outputs import SAFE_NAME, Dataset, _read_pair, _Run, _uint8, parse_dataset
from .perturb import ALIGNED
from .scoring import NO_REFERENCE, Scorer
from .storage import KEY_COLUMNS, ResultStore, check_settings, load_fused

if TYPE_CHECKING:
    from .detection import DetectionSettings


@dataclass
class EvaluationResult:
    """What `evaluate` produced: every row of results.csv for the evaluated methods and datasets, the bad
    inputs (one line each), and the paths of the written files."""

    out_dir: Path
    rows: list[dict[str, str]]
    failures: list[str]
    files: list[Path] = field(default_factory=list)
    grid_panels: dict[Path, int] = field(default_factory=dict)


def _default_grid_stems(stems: list[str], count: int = 3) -> list[str]:
    if len(stems) <= count:
        return stems
    return [stems[round(i * (len(stems) - 1) / (count - 1))] for i in range(count)]


def evaluate(
    datasets: Sequence[Dataset | str | Path],
    methods: Sequence[Method],
    out_dir: str | Path,
    conventions: Sequence[str] = ("vifb", "cddfuse"),
    no_reference: Sequence[str] = (),
    stretch: bool = False,
    perturbations: Sequence[MisalignmentRange] | None = None,
    seed: int = 0,
    grid: Sequence[str] | None = None,
    rescore: bool = False,
    progress: bool = True,
    console: Console | None = None,
    detection: DetectionSettings | None = None,
) -> EvaluationResult:
    """Evaluate `methods` on every pair of `datasets`, resuming whatever `out_dir` already holds.

    `no_reference`: registered no-reference scores to add (`fusionproxy.metrics`: "niqe", plug-ins).
    `perturbations`: levels of test-time IR misalignment (the first must be aligned); None = aligned only.
    `grid`: stems to draw comparison grids for; None = three evenly spaced pairs per dataset, [] = none.
    `rescore`: set aside an existing results.csv (as results.previous.csv) and re-score the cached outputs.
    `detection`: also run the detection study (`evaluate.detection`): its tables go into summary.md, its scores
    into detection.csv, its box figures to detection/<dataset>/<stem>.png (for the grid stems).
    Bad inputs are reported (and listed in `failures`) while everything else is still scored.
    """
    out_dir = Path(out_dir)
    console = console or Console(stderr=True)
    datasets = [d if isinstance(d, Dataset) else parse_dataset(str(d)) for d in datasets]
    levels = tuple(perturbations or (ALIGNED,))
    if levels[0] != ALIGNED:
        raise FusionProxyError("the first perturbation level must be the aligned one (the SSIM reference)")
    scorer = Scorer(conventions, no_reference, stretch)
    _check_unique(methods, datasets)
    _check_mean_parts(methods)

    listings = {}
    for dataset in datasets:
        try:
            listings[dataset.name] = find_dataset_pairs(dataset.root)
        except FileNotFoundError as error:
            raise FusionProxyError(str(error)) from None
    all_stems = {stem for listing in listings.values() for stem, _, _ in listing.pairs}
    missing_grid = [stem for stem in (grid or []) if stem not in all_stems]
    if missing_grid:
        raise FusionProxyError(f"--grid stem(s) {', '.join(missing_grid)} are in none of the datasets")
    grid_stems = {}
    for name, listing in listings.items():
        stems = [stem for stem, _, _ in listing.pairs]
        grid_stems[name] = _default_grid_stems(sorted(stems)) if grid is None else [s for s in grid if s in stems]

    results_path = out_dir / "results.csv"
    settings = {
        "conventions": list(conventions), "no_reference": list(no_reference), "stretch": stretch, "seed": seed,
        "perturbations": [level.label for level in levels],
        "methods": {m.name: m.spec for m in methods}, "datasets": {d.name: str(d.root) for d in datasets},
    }
    check_settings(out_dir / "run.json", settings, results_path.is_file() and not rescore)
    if rescore and results_path.is_file():
        results_path.replace(out_dir / "results.previous.csv")
    extra = [report.SSIM_COLUMN] if len(levels) > 1 else []
    store = ResultStore(results_path, [*KEY_COLUMNS, *scorer.columns, *extra, "seconds"])
    run = _Run(out_dir, list(methods), levels, seed, scorer, store,
               lambda line: console.print(line, highlight=False, markup=False))

    def bar() -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=not progress)

    _score_datasets(run, datasets, listings, bar())
    detection_section, detection_files = "", []
    if detection is not None:  # (imported here: they build on this module)
        from .detection import detection_study
        from .detection_report import markdown, write_csv

        study = detection_study(run, datasets, listings, detection, grid_stems, bar())
        detection_section = markdown(study)
        detection_files = [write_csv(study, out_dir / "detection.csv"), *study.figures]

    method_names = [m.name for m in methods]
    dataset_names = [d.name for d in datasets]
    rows = [r for r in store.rows if r["method"] in method_names and r["dataset"] in dataset_names]
    result = EvaluationResult(out_dir, rows, run.failures)
    groups = report.summarize(rows, scorer.columns + extra)
    summary = out_dir / "summary.md"
    summary.write_text(_summary_markdown(groups, method_names, dataset_names, scorer.tables, levels, stretch,
                                         run.failures) + detection_section)
    result.files += [results_path, summary, *detection_files]
    for convention, (names, higher) in scorer.tables.items():
        chart = out_dir / f"chart_{convention}.png"
        figures.metrics_chart(groups, method_names, dataset_names, convention, names, higher, chart)
        result.files.append(chart)
    if len(levels) > 1:
        chart = out_dir / "misalignment.png"
        figures.misalignment_chart(groups, method_names, dataset_names, [level.label for level in levels], chart)
        result.files.append(chart)
    for dataset in datasets:
        pairs = {stem: (ir_path, vis_path) for stem, ir_path, vis_path in listings[dataset.name].pairs}
        for stem in grid_stems[dataset.name]:
            path = out_dir / "grids" / dataset.name / f"{stem}.png"
            count = _write_grid(run, dataset, stem, *pairs[stem], path)
            if count:
                result.grid_panels[path] = count
                result.files.append(path)
    return result


def _score_datasets(run: _Run, datasets: list[Dataset], listings: dict[str, PairListing], bar: Progress) -> None:
    """Score every pending (method, pair, level); unpaired and unreadable inputs are reported and skipped."""
    per_pair = sum(len(run.levels_of(m)) for m in run.methods)
    with bar:
        task = bar.add_task("evaluating", total=per_pair * sum(len(listing.pairs) for listing in listings.values()))
        for dataset in datasets:
            listing = listings[dataset.name]
            for path in listing.ir_only:
                run.fail(f"{path}: no visible partner with stem '{path.stem}' in {dataset.root}")
            for path in listing.vis_only:
                run.fail(f"{path}: no infrared partner with stem '{path.stem}' in {dataset.root}")
            for stem, ir_path, vis_path in listing.pairs:
                bar.update(task, description=f"{dataset.name}/{stem}")
                if not run.pending(dataset, stem):
                    bar.advance(task, per_pair)
                    continue
                try:
                    ir, vis = _read_pair(ir_path, vis_path)
                except ImageReadError as error:
                    run.fail(str(error))
                    bar.advance(task, per_pair)
                    continue
                run.evaluate_pair(dataset, stem, ir, vis, lambda: bar.advance(task))


def _write_grid(run: _Run, dataset: Dataset, stem: str, ir_path: Path, vis_path: Path, path: Path) -> int:
    """IR | VIS | each method's aligned output that exists; 0 (nothing written) if the pair is unusable."""
    try:
        ir, vis = _read_pair(ir_path, vis_path)
    except ImageReadError:
        return 0  # already reported while scoring
    panels = [("IR", _uint8(ir)), ("VIS", _uint8(vis))]
    for method in run.methods:
        if isinstance(method, FolderMethod):
            found = method.find(dataset.name, stem)
            try:
                image = _uint8(to_unit_float(read_raw(found))) if found else None
            except ImageReadError:
                image = None  # already reported while scoring
        else:
            cached = load_fused(run.fused_path(method, dataset, stem, ALIGNED))
            image = cached[0] if cached else None
        if image is not None and image.shape[:2] == ir.shape:
            panels.append((method.name, image))
    return figures.comparison_grid(panels, path)


def _check_mean_parts(methods: Sequence[Method]) -> None:
    names = {m.name: m for m in methods}
    for method in methods:
        if isinstance(method, MeanMethod):
            missing = [p for p in method.parts if p not in names or isinstance(names[p], (MeanMethod, FolderMethod))]
            if missing:
                raise FusionProxyError(f"method '{method.name}': {', '.join(missing)} must name other computed "
                                       f"methods of this evaluation (known: {', '.join(names)})")


def _check_unique(methods: Sequence[Method], datasets: Sequence[Dataset]) -> None:
    for kind, names in (("method", [m.name for m in methods]), ("dataset", [d.name for d in datasets])):
        for name in names:
            if not SAFE_NAME.match(name):
                raise FusionProxyError(f"{kind} name '{name}': use letters, digits and . _ + - only (NAME=SPEC)")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise FusionProxyError(f"{kind} name(s) {', '.join(duplicates)} given twice; name them with NAME=")


def _summary_markdown(
    groups: dict[tuple[str, str, str], report.Group],
    methods: list[str],
    datasets: list[str],
    tables: dict[str, tuple[list[str], dict[str, bool]]],
    levels: Sequence[MisalignmentRange],
    stretch: bool,
    failures: list[str],
) -> str:
    lines = ["# Evaluation summary", ""]
    lines.append(
        f"Means over images; (rank) per metric among the methods, 1 = best, ↑/↓ = higher/lower is better. "
        f"Outputs {'min-max stretched per image (CDDFuse) ' if stretch else ''}scored as 8-bit images. "
        "Time: median fusion time per image on this machine (sampling included for teachers)."
    )
    for dataset in datasets:
        for convention, (names, higher) in tables.items():
            lines += ["", f"## {dataset}, {_title(convention)}", ""]
            lines.append(report.means_table(groups, methods, dataset, "aligned", convention, names, higher))
    if len(levels) > 1:
        labels = [level.label for level in levels]
        lines += ["", "# Misalignment sensitivity (paper Table 6)", "",
                  "IR input warped by a random affine per image (seeded); metrics against the aligned sources; "
                  "SSIM vs aligned: kornia SSIM (11x11 Gaussian window) of each output against the same "
                  "method's output on aligned inputs."]
        for dataset in datasets:
            for convention, (names, _) in tables.items():
                lines += ["", f"## {dataset}, {_title(convention)}, misaligned IR", ""]
                lines.append(report.misalignment_table(groups, methods, dataset, labels, convention, names))
    if failures:
        lines += ["", "# Inputs that could not be scored", ""] + [f"- {line}" for line in failures]
    return "\n".join(lines) + "\n"


def _title(convention: str) -> str:
    return "no-reference scores" if convention == NO_REFERENCE else f"{convention} convention"

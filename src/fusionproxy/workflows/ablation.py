"""The ablations of the paper, Table 4 (blocks A, B, C) and Table 7 (tau sweep), as one resumable command each.

    fusionproxy ablate table4a|table4b|table4c|table7|all --config cpu|smoke|FILE.yaml --out DIR [--set key=value]

A block is a list of rows; a row is (the cache it trains on: which teachers, N samples each) + (the student) +
(distillation `--set` overrides), mapped to settings as documented in `fusionproxy.losses.config`. Every row
holds all other components at the default, so (c), (h), (l) and tau = 1.0 are one run, trained once. Stages,
each resumable by rerunning the same command:

- caches    `DIR/caches/<teachers>-n<N>-<hash>/`: the `fusionproxy cache build` step, item by item,
- runs      `DIR/runs/<student>-<cache>-<hash>/`: `fusionproxy.distill.distill_from_cache`; a run's directory is keyed
            by its *effective* settings, so rows with the same setup share it; a finished run is skipped,
            an interrupted one resumes from its checkpoint,
- evaluate  `DIR/evaluate/<block>-<hash>/`: one `fusionproxy.evaluate.evaluate` over the block's rows (method =
            row id; the hash covers the test set and the rows' runs, so a changed setting is evaluated afresh),
- table     `DIR/<block>.md` and `DIR/<block>.json`: CDDFuse-convention means, parameters, CPU ms per frame.

Relative paths in the YAML resolve against the current directory (run from the checkout).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config_files import NOT_A_KEY, load_config_as
from ..errors import FusionProxyError
from .ablation_table import BLOCK_NAMES, CONVENTION, block_markdown, summarize_block
# The pipeline's config sections, shared rather than copied.
from .pipeline_config import CacheSection, DistillSection
from .steps import Step, cache_step
from .subsets import link_pairs, resolved_path

BOTH_TEACHERS = ("ddfm", "masked")


# ----- the rows ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One row of Table 4 / Table 7. None fields take the config's defaults (cache N, distill student)."""

    id: str  # the paper's row id; also the evaluation's method name (letters, digits, . _ + -)
    variant: str
    teachers: tuple[str, ...] = BOTH_TEACHERS  # names in the config's `teachers` section
    samples: int | None = None  # N per teacher
    student: str | None = None
    overrides: tuple[str, ...] = ()  # `fusionproxy distill --set` values; "{vgg}" = config.vgg_backbone


def block_rows(block: str) -> list[Row]:
    """The rows of `block` (Table 4 A/B/C, Table 7), with the settings `fusionproxy.losses.config` documents."""
    blocks = {
        "table4a": [  # Block A: teacher ensemble
            Row("a", "Single teacher (masked), N=1", teachers=("masked",), samples=1),
            Row("b", "Single teacher (masked), N-sample ensemble mean", teachers=("masked",)),
            Row("c", "Dual teacher (masked + DDFM), N each (default)"),
        ],
        "table4b": [  # Block B: dual-signal supervision
            Row("d", "VGG-only perceptual loss", overrides=("loss.backbones=[{vgg}]", "loss.routing=uniform")),
            Row("e", "Multi-FM, uniform weighting", overrides=("loss.routing=uniform",)),
            Row("f", "Multi-FM, learned global weights", overrides=("loss.routing=learned",)),
            Row("g", "w/o uncertainty weighting (uniform pixel weights)", overrides=("loss.pixel_weighting=uniform",)),
            Row("h", "Full dual-signal, Eq. 8 (default)"),
        ],
        # Block C: the registered students. The paper's (j) EfficientFormer V2-S1 has no counterpart here (no
        # mobile-Transformer student), so it is left out; mobile_unet (MobileNet inverted residuals) stands in
        # for (k) MobileNetV4-Conv-M; dtpf_student is too heavy to train at CPU scale.
        "table4c": [
            Row("i", "Ultra-light custom CNN (ultralight)", student="ultralight"),
            Row("k", "Mobile CNN, inverted residuals (mobile_unet; stands in for MobileNetV4-Conv-M)",
                student="mobile_unet"),
            Row("l", "ConvNeXt V2-based (convnext_unet, default)", student="convnext_unet"),
        ],
        # Table 7: routing temperature. tau = inf is uniform routing, i.e. row (e) (the loss computes `uniform`
        # as adaptive routing at tau = inf), so that row reuses (e)'s run.
        "table7": [
            *(Row(f"tau{t:g}", f"tau = {t:g}" + (" (default)" if t == 1.0 else ""), overrides=(f"loss.tau={t:g}",))
              for t in (0.1, 0.5, 1.0, 2.0, 5.0)),
            Row("tauinf", "tau = inf: uniform routing (= row (e))", overrides=("loss.routing=uniform",)),
        ],
    }  # fmt: skip
    if block not in blocks:
        raise FusionProxyError(f"unknown block '{block}' (known: {', '.join(BLOCK_NAMES)}, all)")
    return blocks[block]


# ----- configuration -------------------------------------------------------------------------------------
@dataclass
class DataOptions:
    """train / test: pair folders; *_limit: use only their first N pairs (linked under DIR/data/)."""

    train: str = "../shared/datasets/roadscene/train"
    test: str = "../shared/datasets/roadscene/test"
    train_limit: int | None = None
    test_limit: int | None = None


@dataclass
class EvaluateOptions:
    """stretch: CDDFuse's per-image min-max stretch before scoring; grid: stems for comparison grids
    ('none'; null = three evenly spaced pairs)."""

    stretch: bool = True
    grid: str | None = None
    seed: int = 0


@dataclass
class AblationConfig:
    data: DataOptions = field(default_factory=DataOptions)
    teachers: dict[str, str] = field(default_factory=dict)  # name -> teacher directory
    cache: CacheSection = field(default_factory=CacheSection)  # samples_per_teacher: the default N
    distill: DistillSection = field(default_factory=DistillSection)  # student: the default student
    evaluate: EvaluateOptions = field(default_factory=EvaluateOptions)
    vgg_backbone: str = "vgg16-hed"  # row (d)'s single backbone; must be in the cache's panel
    threads: int = 0  # torch threads while the block runs (0: leave as is)
    source: str = field(default="", metadata={NOT_A_KEY: True})  # where the config came from

    def __post_init__(self) -> None:
        if not isinstance(self.teachers, dict) or set(self.teachers) != set(BOTH_TEACHERS):
            raise FusionProxyError(f"teachers: give the directories of {' and '.join(BOTH_TEACHERS)}")
        self.teachers = {name: str(directory) for name, directory in self.teachers.items()}


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> AblationConfig:
    """A bundled config (`cpu`, `smoke`) or a YAML path, with `section.key=value` overrides."""
    config, path = load_config_as(AblationConfig, name_or_path, "ablation", overrides=overrides)
    config.source = str(path)
    return config


# ----- the plan: which cache and which run each row uses -------------------------------------------------
def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class PlannedRow:
    row: Row
    teachers: tuple[str, ...]
    samples: int
    student: str
    overrides: list[str]  # every distill --set: the config's, then the row's
    cache_dir: Path
    run_dir: Path


def plan_block(config: AblationConfig, block: str, out: Path) -> list[PlannedRow]:
    """Each row of `block` with its cache and run directory, keyed by effective settings (shared rows coincide)."""
    from ..distill import load_config as load_distill_config

    out = out.resolve()
    planned = []
    for row in block_rows(block):
        samples = row.samples or config.cache.samples_per_teacher
        cache_settings = {**asdict(config.cache), "samples_per_teacher": samples, "device": None,
                          "teachers": [config.teachers[t] for t in row.teachers],
                          "train": config.data.train, "train_limit": config.data.train_limit}  # fmt: skip
        cache_key = f"{'+'.join(row.teachers)}-n{samples}-{_digest(cache_settings)}"
        student = row.student or config.distill.student
        overrides = [*config.distill.set, *(o.replace("{vgg}", config.vgg_backbone) for o in row.overrides)]
        # Key by the parsed config, not the override strings: `loss.tau=1` and no override are the same run.
        effective = load_distill_config(config.distill.config, overrides).to_dict()
        run_key = f"{student}-{cache_key}-{_digest({'student': student, 'distill': effective})}"
        planned.append(PlannedRow(row, row.teachers, samples, student, overrides,
                                  out / "caches" / cache_key, out / "runs" / run_key))  # fmt: skip
    return planned


def data_dirs(config: AblationConfig, out: Path) -> tuple[Path, Path, str]:
    """(training pairs, test pairs, test set name): the configured folders or their first N pairs, linked."""
    from ..evaluate import parse_dataset

    data, out = config.data, out.resolve()
    train, test = resolved_path(data.train), resolved_path(data.test)
    name = parse_dataset(str(test)).name  # e.g. roadscene-test, also when a subset is linked
    # One folder per limit: links are only ever added, so a folder reused for another limit would keep extras.
    if data.train_limit is not None:
        train = out / "data" / f"train-first{data.train_limit}"
        link_pairs(data.train, train, data.train_limit, config.source)
    if data.test_limit is not None:
        test = out / "data" / f"test-first{data.test_limit}"
        link_pairs(data.test, test, data.test_limit, config.source)
    return train, test, name


def cache_build(config: AblationConfig, planned: PlannedRow, train: Path) -> Step:
    """The `fusionproxy cache build` step of a row's cache."""
    cache = config.cache
    return cache_step(train, [resolved_path(config.teachers[t]) for t in planned.teachers], planned.cache_dir,
                      cache.panel, planned.samples, cache.crop_size, cache.crops_per_image, cache.grid, cache.seed,
                      cache.device, cache.random_init)  # fmt: skip


def run_finished(run_dir: Path) -> bool:
    """`distill` writes the loadable model only after its last step."""
    return (run_dir / "config.json").is_file() and (run_dir / "model.safetensors").is_file()


# ----- running -------------------------------------------------------------------------------------------
def run_block(
    config: AblationConfig,
    block: str,
    out: str | Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build the block's caches, train its runs, evaluate them and write DIR/<block>.md and .json; resumable.

    Returns the JSON summary (also written to DIR/<block>.json)."""
    import torch

    from ..distill import distill_from_cache, load_config as load_distill_config
    from ..evaluate import Dataset, evaluate, parse_method

    out = Path(out).resolve()
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        planned = plan_block(config, block, out)
        train, test, test_name = data_dirs(config, out)
        for cache_dir, rows in _group(planned, "cache_dir").items():  # each cache once, in row order
            log(f"[cache] {cache_dir.name} (rows {', '.join(p.row.id for p in rows)})")
            cache_build(config, rows[0], train).call()  # resumes item by item; finished: a no-op
        for run_dir, rows in _group(planned, "run_dir").items():
            ids, first = ", ".join(p.row.id for p in rows), rows[0]
            if run_finished(run_dir):
                log(f"[distill] {run_dir.name} (rows {ids}): finished earlier; skipped")
                continue
            log(f"[distill] {run_dir.name} (rows {ids}): {first.student} {' '.join(first.overrides)}")
            distill_from_cache(first.cache_dir, run_dir, first.student,
                               load_distill_config(config.distill.config, first.overrides),
                               allow_random_panel=config.cache.random_init)  # fmt: skip
        methods = [parse_method(f"{p.row.id}=model:{p.run_dir}") for p in planned]
        evaluation = out / "evaluate" / f"{block}-{_digest([str(test), *(m.spec for m in methods)])}"
        log(f"[evaluate] {len(planned)} rows on {test_name} -> {evaluation}")
        grid = config.evaluate.grid
        stems = None if grid is None else [] if grid == "none" else grid.split(",")
        result = evaluate([Dataset(test_name, test)], methods, evaluation, conventions=[CONVENTION],
                          stretch=config.evaluate.stretch, seed=config.evaluate.seed, grid=stems,
                          progress=False)  # fmt: skip
        if result.failures:
            raise FusionProxyError(f"{len(result.failures)} test input(s) could not be scored; see "
                                   f"{evaluation / 'summary.md'}")  # fmt: skip
        every_row = [q for name in BLOCK_NAMES for q in plan_block(config, name, out)]
        summary = summarize_block(config, block, planned, every_row, result.rows, test_name)
    finally:
        torch.set_num_threads(threads)
    (out / f"{block}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / f"{block}.md").write_text(block_markdown(summary))
    log(f"[table] {out / f'{block}.md'}")
    return summary


def _group(planned: list[PlannedRow], attribute: str) -> dict[Path, list[PlannedRow]]:
    """Rows by their cache or run directory, in row order: what shares a directory is built once."""
    groups: dict[Path, list[PlannedRow]] = {}
    for p in planned:
        groups.setdefault(getattr(p, attribute), []).append(p)
    return groups

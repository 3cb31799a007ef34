"""The whole chain, from scratch to a benchmarked default student, as one resumable command.

    fusionproxy pipeline --config cpu|gpu|smoke|FILE.yaml --out DIR [--from STAGE] [--until STAGE] [--dry-run]

Stages, in order, each one or more of the package's own `fusionproxy ...` commands (see `plan`):

- `weights`  fetch the offline pretrained panel (skipped for a random-init panel),
- `prior`    train DDFM's diffusion prior; its output directory is the DDFM teacher (paper Sec. 3.2),
- `masked`   train the masked-diffusion teacher,
- `cache`    sample both teachers N times per training item, run the panel, store Eq. 3-6 and 9 statistics,
- `distill`  distil the student (Eq. 7-12, misalignment injection of Eq. 14, uncertainty head),
- `evaluate` score student, each teacher's N-sample ensemble mean and the classical baselines on the test sets,
- `bench`    the student's latency per size and backend.

Every command resumes by itself when rerun; on top of that `DIR/pipeline_state.json` records each finished stage
with its exact commands and wall time, so a rerun skips finished stages, and a stage whose commands changed (an
edited config) runs again together with every stage after it. Paths in the YAML that are relative resolve
against the current directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config_files import load_config_file
from .errors import FusionProxyError
from .io import IMAGE_SUFFIXES, find_dataset_pairs

STAGES = ("weights", "prior", "masked", "cache", "distill", "evaluate", "bench")
STATE_FILE = "pipeline_state.json"
STATE_VERSION = 1
# How a child process reaches the CLI: the package has a console script but no `python -m` entry point.
# The layout of an evaluation's fused-output cache (fusionproxy.evaluate.storage), shared between variants.
EVAL_OUTPUTS = "fused"

Command = list[str]  # argv of `fusionproxy`, without the program name
Runner = Callable[[Command], None]


# ----- configuration -------------------------------------------------------------------------------------
def config_section(cls: type, values: Any, where: str) -> Any:
    """Build dataclass `cls` from a YAML mapping, refusing unknown keys (a typo must not pass silently)."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise FusionProxyError(f"{where}: expected a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise FusionProxyError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    try:
        return cls(**values)
    except TypeError as error:
        raise FusionProxyError(f"{where}: {error}") from None


@dataclass
class DataSection:
    """natural: teacher training images; train: IR/VIS pairs of the cache; test: NAME -> pair folder.
    limit / test_limit: use only the first N natural images and training pairs / pairs of each test set
    (linked under OUT/data; for smoke runs)."""

    natural: str = "../shared/datasets/natural"
    train: str = "../shared/datasets/roadscene/train"
    test: dict[str, str] = field(default_factory=lambda: {
        "roadscene": "../shared/datasets/roadscene/test", "tno": "../shared/datasets/tno"})  # fmt: skip
    limit: int | None = None
    test_limit: int | None = None


@dataclass
class TeachersSection:
    """config: bundled teacher config name or YAML; set: --set overrides for both teachers, masked / prior:
    extra overrides for one of them; threads: torch threads of the training processes (0: torch's default)."""

    config: str = "cpu"
    set: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    prior: list[str] = field(default_factory=list)
    threads: int = 0


@dataclass
class CacheSection:
    """Options of `fusionproxy cache build`; random_init builds a random panel (tests only, recorded)."""

    panel: str = "default"
    random_init: bool = False
    samples_per_teacher: int = 4
    crop_size: int = 256
    crops_per_image: int = 1
    grid: int = 64
    seed: int = 0
    device: str = "auto"


@dataclass
class DistillSection:
    """head_steps > 0: then `fusionproxy distill-head` gives the distilled model the input-aware uncertainty
    head, fitted alone for that many steps (width head_hidden); the fused image does not change."""

    student: str = "convnext_unet"
    config: str = "cpu"
    set: list[str] = field(default_factory=list)
    head_steps: int = 0
    head_hidden: int = 8


@dataclass
class EvaluateSection:
    """stretch: one evaluation per entry (false: raw outputs; true: CDDFuse's min-max stretch); the later ones
    reuse the first one's fused outputs. grid: stems for comparison grids ('none'; null = the default three);
    baselines: add the classical baselines (average, max, Laplacian pyramid)."""

    teacher_samples: int = 4
    conventions: str = "vifb,cddfuse"
    baselines: bool = True
    stretch: list[bool] = field(default_factory=lambda: [False])
    grid: str | None = None
    seed: int = 0


@dataclass
class BenchSection:
    """teacher_runs: timed samples of each teacher per size, for the distillation speed-up (0: skip)."""

    sizes: str = "480x640,768x1024"
    backends: str = "eager,channels_last,onnxruntime"
    runs: int = 100
    warmup: int = 10
    threads: int | None = None
    teacher_runs: int = 3


@dataclass
class PipelineConfig:
    """A whole run. isolate: run every command in its own Python process (frees memory between stages and
    survives a crashing stage); false runs them in this process, which saves the start-up of each."""

    data: DataSection = field(default_factory=DataSection)
    teachers: TeachersSection = field(default_factory=TeachersSection)
    cache: CacheSection = field(default_factory=CacheSection)
    distill: DistillSection = field(default_factory=DistillSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    bench: BenchSection = field(default_factory=BenchSection)
    isolate: bool = True
    source: str = ""  # where the config came from (not a YAML key)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str) -> PipelineConfig:
        sections = {"data": DataSection, "teachers": TeachersSection, "cache": CacheSection,
                    "distill": DistillSection, "evaluate": EvaluateSection, "bench": BenchSection}  # fmt: skip
        unknown = sorted(set(values) - set(sections) - {"isolate"})
        if unknown:
            raise FusionProxyError(f"{where}: unknown section(s) {', '.join(unknown)}")
        built = {name: config_section(kind, values.get(name), f"{where}: {name}") for name, kind in sections.items()}
        config = cls(**built, isolate=bool(values.get("isolate", True)), source=where)
        stretch = config.evaluate.stretch
        if not stretch or len(set(stretch)) != len(stretch):
            raise FusionProxyError(f"{where}: evaluate.stretch takes false and/or true, each at most once")
        return config


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> PipelineConfig:
    """A bundled config (`cpu`, `gpu`, `smoke`) or a YAML path, with `section.key=value` overrides."""
    values, path = load_config_file(name_or_path, "pipeline", overrides=overrides)
    return PipelineConfig.from_dict(values, str(path))


# ----- the plan ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    name: str
    what: str  # one line: what the stage produces
    commands: list[Command]


@dataclass(frozen=True)
class Layout:
    """Where every stage writes inside the pipeline's output directory."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def ddfm(self) -> Path:
        return self.root / "teachers" / "ddfm"

    @property
    def masked(self) -> Path:
        return self.root / "teachers" / "masked"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def student(self) -> Path:
        return self.root / "student"

    @property
    def distilled(self) -> Path:
        """The distilled model before its uncertainty head is fitted (only with distill.head_steps)."""
        return self.root / "student-distilled"

    def evaluation(self, stretch: bool) -> Path:
        return self.root / ("evaluate-stretch" if stretch else "evaluate")

    @property
    def bench(self) -> Path:
        return self.root / "bench" / "bench.json"


def resolved_path(path: str) -> Path:
    return Path(path).expanduser().resolve()


def _config_arg(name_or_path: str) -> str:
    """Config names pass through; YAML paths resolve against the current directory like every other path."""
    return str(resolved_path(name_or_path)) if name_or_path.endswith((".yaml", ".yml")) else name_or_path


def _sets(overrides: Sequence[str]) -> list[str]:
    return [part for item in overrides for part in ("--set", item)]


def data_folders(config: PipelineConfig, layout: Layout) -> tuple[Path, Path, dict[str, Path]]:
    """(natural images, training pairs, test sets) as the stages see them: the configured folders, or their
    first `limit` (`test_limit`) entries linked under OUT/data."""
    data = config.data
    natural, train = resolved_path(data.natural), resolved_path(data.train)
    if data.limit is not None:
        natural, train = layout.data / "natural", layout.data / "train"
    tests = {name: resolved_path(path) for name, path in data.test.items()}
    if data.test_limit is not None:
        tests = {name: layout.data / "test" / name for name in data.test}
    return natural, train, tests


def fetchable_backbones(panel: str) -> list[str]:
    """The backbones of `panel` whose weights `fusionproxy weights fetch` can get; the others (CLIP, SAM, ...)
    are user-supplied and checked by the cache build."""
    from .foundation import DEFAULT_PANEL, PAPER_PANEL
    from .foundation.fetch import SOURCES

    names = {"default": DEFAULT_PANEL, "paper": PAPER_PANEL}.get(panel, [n for n in panel.split(",") if n])
    return [name for name in names if name in SOURCES]


def plan(config: PipelineConfig, out: Path) -> list[Stage]:
    """Every stage with the exact `fusionproxy` commands it runs."""
    layout = Layout(out.resolve())
    natural, train, tests = data_folders(config, layout)
    teachers, cache, distill, evaluate, bench = (config.teachers, config.cache, config.distill, config.evaluate,
                                                 config.bench)  # fmt: skip
    random_panel = cache.random_init

    def teacher(kind: str, out_dir: Path, extra: list[str]) -> Command:
        return ["teacher", "train", kind, "--images", str(natural), "--out", str(out_dir),
                "--config", _config_arg(teachers.config), "--val-pairs", str(train),
                "--threads", str(teachers.threads), *_sets([*teachers.set, *extra])]  # fmt: skip

    panel_names = [] if random_panel else fetchable_backbones(cache.panel)
    cache_command = [
        "cache", "build", "--data", str(train), "--teacher", str(layout.ddfm), "--teacher", str(layout.masked),
        "--out", str(layout.cache), "--panel", cache.panel, "--samples-per-teacher", str(cache.samples_per_teacher),
        "--crop-size", str(cache.crop_size), "--crops-per-image", str(cache.crops_per_image),
        "--grid", str(cache.grid), "--seed", str(cache.seed), "--device", cache.device,
        *(["--random-init"] if random_panel else []),
    ]  # fmt: skip
    distilled = layout.distilled if distill.head_steps else layout.student
    distill_commands = [[
        "distill", "--cache", str(layout.cache), "--out", str(distilled), "--student", distill.student,
        "--config", _config_arg(distill.config), *_sets(distill.set),
        *(["--allow-random-panel"] if random_panel else []),
    ]]  # fmt: skip
    if distill.head_steps:
        distill_commands.append([
            "distill-head", "--model", str(distilled), "--cache", str(layout.cache), "--out", str(layout.student),
            "--steps", str(distill.head_steps), "--hidden", str(distill.head_hidden),
        ])  # fmt: skip
    n = evaluate.teacher_samples
    # The last row is both teachers' 2N-sample ensemble mean (Eq. 3), the student's target, from the same draws.
    methods = [f"student=model:{layout.student}", f"ddfm-x{n}=teacher:{layout.ddfm}:{n}",
               f"masked-x{n}=teacher:{layout.masked}:{n}", f"ensemble-x{2 * n}=mean:ddfm-x{n}+masked-x{n}"]  # fmt: skip
    evaluate_commands = [
        ["evaluate", *(a for name, path in tests.items() for a in ("--dataset", f"{name}={path}")),
         *(a for m in methods for a in ("--method", m)), "--out", str(layout.evaluation(stretch)),
         "--convention", evaluate.conventions, "--stretch" if stretch else "--no-stretch",
         "--baselines" if evaluate.baselines else "--no-baselines", "--seed", str(evaluate.seed),
         *(["--grid", evaluate.grid] if evaluate.grid is not None else [])]
        for stretch in evaluate.stretch
    ]  # fmt: skip
    bench_command = [
        "bench", str(layout.student), "--sizes", bench.sizes, "--backends", bench.backends, "--runs", str(bench.runs),
        "--warmup", str(bench.warmup), "--json", str(layout.bench),
        *(["--threads", str(bench.threads)] if bench.threads else []),
        *([a for d in (layout.ddfm, layout.masked) for a in ("--teacher", str(d))] + ["--teacher-runs",
          str(bench.teacher_runs)] if bench.teacher_runs else []),
    ]  # fmt: skip
    return [
        Stage("weights", "the offline pretrained panel under $FUSIONPROXY_HOME/weights",
              [["weights", "fetch", *panel_names]] if panel_names else []),
        Stage("prior", f"DDFM teacher (trained prior) in {layout.ddfm}",
              [teacher("prior", layout.ddfm, teachers.prior)]),
        Stage("masked", f"masked-diffusion teacher in {layout.masked}",
              [teacher("masked", layout.masked, teachers.masked)]),
        Stage("cache", f"teacher-ensemble cache in {layout.cache}", [cache_command]),
        Stage("distill", f"student model directory {layout.student}", distill_commands),
        Stage("evaluate", "tables, grids and charts in "
              + ", ".join(str(layout.evaluation(s)) for s in evaluate.stretch), evaluate_commands),
        Stage("bench", f"latency table in {layout.bench}", [bench_command]),
    ]  # fmt: skip


def format_command(command: Command) -> str:
    return shlex.join(["fusionproxy", *command])


# ----- data subsets (smoke runs) -------------------------------------------------------------------------
def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())


def link_pairs(source: str, target: Path, limit: int, where: str) -> None:
    try:
        pairs = find_dataset_pairs(resolved_path(source)).pairs[:limit]
    except FileNotFoundError as error:
        raise FusionProxyError(f"{error} (data in {where})") from None
    for _, ir, vis in pairs:
        _link(ir, target / "ir" / ir.name)
        _link(vis, target / "vi" / vis.name)


def link_subsets(config: PipelineConfig, layout: Layout) -> None:
    """Link the first `data.limit` natural images and training pairs, and the first `data.test_limit` pairs of
    each test set, under OUT/data (idempotent)."""
    data = config.data
    natural, train, tests = data_folders(config, layout)
    if data.limit is not None:
        natural_dir = resolved_path(data.natural)
        if not natural_dir.is_dir():
            raise FusionProxyError(f"{natural_dir}: natural image folder not found (data.natural in {config.source})")
        for image in sorted(p for p in natural_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: data.limit]:
            _link(image, natural / image.name)
        link_pairs(data.train, train, data.limit, config.source)
    if data.test_limit is not None:
        for name, target in tests.items():
            link_pairs(data.test[name], target, data.test_limit, config.source)


def share_evaluation_outputs(config: PipelineConfig, layout: Layout) -> None:
    """Hard-link the first evaluation's fused outputs into the later variants' folders, so a stretched
    re-scoring does not sample the teachers again (the evaluation scores cached outputs as fresh ones)."""
    first = layout.evaluation(config.evaluate.stretch[0]) / EVAL_OUTPUTS
    for stretch in config.evaluate.stretch[1:]:
        target = layout.evaluation(stretch) / EVAL_OUTPUTS
        if first.is_dir() and target != first:
            shutil.copytree(first, target, copy_function=_hard_link, dirs_exist_ok=True)


def _hard_link(source: str, target: str) -> None:
    if not os.path.exists(target):
        os.link(source, target)


# ----- running -------------------------------------------------------------------------------------------
def run_in_process(command: Command) -> None:
    """Run a `fusionproxy` command in this process (what `fusionproxy ...` does, minus the interpreter start-up).

    Typer reports usage errors itself and exits; FusionProxyError from the command propagates unchanged."""
    from .cli import app

    try:
        app(args=command, prog_name="fusionproxy")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise FusionProxyError(f"{format_command(command)}: exited with status {exit_.code}") from None


def run_subprocess(command: Command) -> None:
    """Run a `fusionproxy` command in a fresh Python process of the same interpreter."""
    code = subprocess.run([sys.executable, "-m", "fusionproxy", *command], check=False).returncode
    if code != 0:
        raise FusionProxyError(f"{format_command(command)}: exited with status {code}")


class PipelineState:
    """`pipeline_state.json`: per stage its status, commands and accumulated wall time; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"version": STATE_VERSION, "stages": {}}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise FusionProxyError(f"{path}: corrupt pipeline state ({error}); delete it to start over") from None
            if not isinstance(self.data, dict) or not isinstance(self.data.get("stages"), dict):
                raise FusionProxyError(f"{path}: not a pipeline state file; delete it to start over")

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"status": "pending", "seconds": 0.0, "attempts": 0})

    def finished(self, stage: Stage) -> bool:
        entry = self.data["stages"].get(stage.name, {})
        return entry.get("status") == "finished" and entry.get("commands") == stage.commands

    def forget(self, name: str) -> None:
        if name in self.data["stages"]:
            self.data["stages"][name]["status"] = "pending"

    def record(self, stage: Stage, status: str, seconds: float) -> None:
        entry = self.stage(stage.name)
        entry.update(status=status, commands=stage.commands, seconds=round(entry["seconds"] + seconds, 2),
                     attempts=entry["attempts"] + 1, last_seconds=round(seconds, 2),
                     updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))  # fmt: skip
        self.save()

    def total_seconds(self) -> float:
        return round(sum(entry.get("seconds", 0.0) for entry in self.data["stages"].values()), 2)

    def save(self) -> None:
        self.data["total_seconds"] = self.total_seconds()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data, indent=2) + "\n")
        temporary.replace(self.path)


@dataclass
class StageReport:
    name: str
    status: str  # finished (in this run), skipped (finished before), not run (outside --from/--until)
    seconds: float  # this invocation
    total_seconds: float  # every invocation together


def _selected(start: str | None, until: str | None) -> list[str]:
    for value, option in ((start, "--from"), (until, "--until")):
        if value is not None and value not in STAGES:
            raise FusionProxyError(f"{option} {value}: unknown stage (stages: {', '.join(STAGES)})")
    first = STAGES.index(start) if start else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    if first > last:
        raise FusionProxyError(f"--from {start} comes after --until {until} (order: {', '.join(STAGES)})")
    return list(STAGES[first : last + 1])


def run_pipeline(
    config: PipelineConfig,
    out: str | Path,
    start: str | None = None,
    until: str | None = None,
    runner: Runner | None = None,
    log: Callable[[str], None] = print,
) -> list[StageReport]:
    """Run the selected stages in order, skipping the finished ones; returns a report per stage.

    `start` (--from) runs that stage and every later one again even if they finished; the stages before it
    must have finished. A stage whose commands differ from the recorded ones (an edited config) reruns, and so
    do all the stages after it. A failing stage is recorded with its time and the error propagates.
    """
    out = Path(out).resolve()
    layout = Layout(out)
    stages = plan(config, out)
    selected = _selected(start, until)
    state = PipelineState(out / STATE_FILE)
    if start is not None:
        missing = [s.name for s in stages[: STAGES.index(start)] if s.commands and not state.finished(s)]
        if missing:
            raise FusionProxyError(f"{out / STATE_FILE}: stage(s) {', '.join(missing)} before --from {start} have not "
                                   "finished with this config; run them first (drop --from)")  # fmt: skip
        for stage in stages[STAGES.index(start) :]:
            state.forget(stage.name)
    state.data["config"] = config.source
    state.save()
    link_subsets(config, layout)
    runner = runner or (run_subprocess if config.isolate else run_in_process)

    reports, invalidated = [], False
    for stage in stages:
        entry = state.stage(stage.name)
        if stage.name not in selected:
            reports.append(StageReport(stage.name, "not run", 0.0, entry["seconds"]))
            continue
        if state.finished(stage) and not invalidated:
            log(f"[{stage.name}] finished earlier ({entry['seconds']:.1f} s); skipped")
            reports.append(StageReport(stage.name, "skipped", 0.0, entry["seconds"]))
            continue
        if entry.get("commands") not in (None, stage.commands):
            log(f"[{stage.name}] its commands changed since the last run; running it and every later stage again")
            invalidated = True
        began = time.perf_counter()
        try:
            for command in stage.commands:
                log(f"[{stage.name}] {format_command(command)}")
                runner(command)
                if stage.name == "evaluate":
                    share_evaluation_outputs(config, layout)
        except BaseException:
            state.record(stage, "failed", time.perf_counter() - began)
            raise
        seconds = round(time.perf_counter() - began, 2)
        state.record(stage, "finished", seconds)
        log(f"[{stage.name}] finished in {seconds:.1f} s")
        reports.append(StageReport(stage.name, "finished", seconds, state.stage(stage.name)["seconds"]))
    return reports

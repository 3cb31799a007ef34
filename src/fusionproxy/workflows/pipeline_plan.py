"""What `fusionproxy pipeline` runs: where each stage writes (`Layout`) and each stage's steps (`plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io import visible_folder
from .pipeline_config import PipelineConfig
from .steps import (
    Command, Step, bench_step, cache_step, distill_head_step, distill_step, evaluate_step, teacher_step, weights_step,
)
from .subsets import resolved_path

STAGES = ("weights", "prior", "masked", "cache", "distill", "evaluate", "bench")


@dataclass(frozen=True)
class Stage:
    name: str
    what: str  # one line: what the stage produces
    steps: list[Step]

    @property
    def commands(self) -> list[Command]:
        """The steps as `fusionproxy` commands: what a dry run prints and the state file records."""
        return [step.argv for step in self.steps]


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
    def full(self) -> Path:
        """The first distillation's model, which the compact variant starts from (only with distill.compact)."""
        return self.root / "student-full"

    @property
    def distilled(self) -> Path:
        """The distilled model before its uncertainty head is fitted (only with distill.head_steps)."""
        return self.root / "student-distilled"

    def evaluation(self, stretch: bool) -> Path:
        return self.root / ("evaluate-stretch" if stretch else "evaluate")

    @property
    def bench(self) -> Path:
        return self.root / "bench" / "bench.json"


def _config_arg(name_or_path: str) -> str:
    """Config names pass through; YAML paths resolve against the current directory like every other path."""
    return str(resolved_path(name_or_path)) if name_or_path.endswith((".yaml", ".yml")) else name_or_path


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
    from ..foundation import panel_names
    from ..foundation.fetch import SOURCES

    return [name for name in panel_names(panel) if name in SOURCES]


def plan(config: PipelineConfig, out: Path) -> list[Stage]:
    """Every stage with its steps (library calls and the exact `fusionproxy` commands they stand for)."""
    layout = Layout(out.resolve())
    natural, train, tests = data_folders(config, layout)
    teachers, cache, distill, evaluate, bench = (config.teachers, config.cache, config.distill, config.evaluate,
                                                 config.bench)  # fmt: skip
    random_panel = cache.random_init

    visible = []
    if teachers.train_visible:  # a limited run's pairs are linked by a later step, always into a `vi` folder
        visible = [f"data.extra_images=[{visible_folder(train) if train.is_dir() else train / 'vi'}]"]

    def teacher(kind: str, out_dir: Path, extra: list[str]) -> Step:
        return teacher_step(kind, natural, out_dir, _config_arg(teachers.config), train, teachers.threads,
                            [*visible, *teachers.set, *extra])  # fmt: skip

    fetchable = [] if random_panel else fetchable_backbones(cache.panel)
    distilled = layout.distilled if distill.head_steps else layout.student
    first = layout.full if distill.compact else distilled
    distill_steps = [distill_step(layout.cache, first, distill.student, _config_arg(distill.config), distill.set,
                                  random_panel)]  # fmt: skip
    if distill.compact:
        distill_steps.append(distill_step(layout.cache, distilled, distill.student, _config_arg(distill.config),
                                          [*distill.set, f"init_from={first}", *distill.compact], random_panel))
    if distill.head_steps:
        distill_steps.append(distill_head_step(distilled, layout.cache, layout.student, distill.head_steps,
                                               distill.head_hidden))  # fmt: skip
    n = evaluate.teacher_samples
    # The last row is both teachers' 2N-sample ensemble mean (Eq. 3), the student's target, from the same draws.
    methods = [f"student=model:{layout.student}", f"ddfm-x{n}=teacher:{layout.ddfm}:{n}",
               f"masked-x{n}=teacher:{layout.masked}:{n}", f"ensemble-x{2 * n}=mean:ddfm-x{n}+masked-x{n}"]  # fmt: skip
    evaluate_steps = [evaluate_step(tests, methods, layout.evaluation(stretch), evaluate.conventions, stretch,
                                    evaluate.baselines, evaluate.seed, evaluate.grid)
                      for stretch in evaluate.stretch]  # fmt: skip
    bench_teachers = [layout.ddfm, layout.masked] if bench.teacher_runs else []
    return [
        Stage("weights", "the offline pretrained panel under $FUSIONPROXY_HOME/weights",
              [weights_step(fetchable)] if fetchable else []),
        Stage("prior", f"DDFM teacher (trained prior) in {layout.ddfm}",
              [teacher("prior", layout.ddfm, teachers.prior)]),
        Stage("masked", f"masked-diffusion teacher in {layout.masked}",
              [teacher("masked", layout.masked, teachers.masked)]),
        Stage("cache", f"teacher-ensemble cache in {layout.cache}",
              [cache_step(train, [layout.ddfm, layout.masked], layout.cache, cache.panel, cache.samples_per_teacher,
                          cache.crop_size, cache.crops_per_image, cache.grid, cache.seed, cache.device,
                          random_panel)]),
        Stage("distill", f"student model directory {layout.student}", distill_steps),
        Stage("evaluate", "tables, grids and charts in "
              + ", ".join(str(layout.evaluation(s)) for s in evaluate.stretch), evaluate_steps),
        Stage("bench", f"latency table in {layout.bench}",
              [bench_step(layout.student, bench.sizes, bench.backends, bench.runs, bench.warmup, layout.bench,
                          bench.threads, bench_teachers, bench.teacher_runs)]),
    ]  # fmt: skip

"""The settings of `fusionproxy pipeline`: one section per stage, loaded by the package's config loader."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..config_files import NOT_A_KEY, load_config_as
from ..errors import FusionProxyError


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
    extra overrides for one of them; threads: torch threads of the training processes (0: torch's default);
    train_visible: the teachers also learn from the visible frames of `data.train` (`data.extra_images`;
    never a test set)."""

    config: str = "cpu"
    set: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    prior: list[str] = field(default_factory=list)
    threads: int = 0
    train_visible: bool = False


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
    head, fitted alone for that many steps (width head_hidden); the fused image does not change.
    compact non-empty: a second distillation, started from the first one's model (`init_from`) with these
    overrides on top of `set` (a smaller, faster variant of the student); the head is then fitted to it."""

    student: str = "convnext_unet"
    config: str = "cpu"
    set: list[str] = field(default_factory=list)
    compact: list[str] = field(default_factory=list)
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

    def __post_init__(self) -> None:
        if not self.stretch or len(set(self.stretch)) != len(self.stretch):
            raise FusionProxyError("evaluate.stretch takes false and/or true, each at most once")


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
    """A whole run. isolate: run every step's command in its own Python process (frees memory between stages and
    survives a crashing stage; `fusionproxy pipeline` supplies that runner); false runs the steps' library calls
    in this process, which saves the start-up of each."""

    data: DataSection = field(default_factory=DataSection)
    teachers: TeachersSection = field(default_factory=TeachersSection)
    cache: CacheSection = field(default_factory=CacheSection)
    distill: DistillSection = field(default_factory=DistillSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    bench: BenchSection = field(default_factory=BenchSection)
    isolate: bool = True
    source: str = field(default="", metadata={NOT_A_KEY: True})  # where the config came from

    config_noun: ClassVar[str] = "section"


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> PipelineConfig:
    """A bundled config (`cpu`, `gpu`, `smoke`) or a YAML path, with `section.key=value` overrides."""
    config, path = load_config_as(PipelineConfig, name_or_path, "pipeline", overrides=overrides)
    config.source = str(path)
    return config

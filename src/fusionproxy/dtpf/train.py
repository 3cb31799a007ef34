"""DTPF's two training stages (paper Sec. III-C) on the shared `fusionproxy.training.Trainer`.

    fusionproxy dtpf train-teacher --data DIR --config cpu|gpu|FILE.yaml --out DIR [--labels FILE]
    fusionproxy dtpf distill --teacher DIR --data DIR --config cpu|gpu|FILE.yaml --out DIR [--labels FILE]

Stage 1 trains the text-guided teacher with the event-weighted base loss (Eq. 12-16); stage 2 distils it into
`dtpf_student` (Eq. 17-19). Both write `events.csv` (each pair's event and whether it came from the labels file
or the estimator), the Trainer's `log.csv` and `checkpoints/` (rerunning the command resumes), and the final
weights: the teacher as `config.json` + `model.safetensors` (`DTPFTeacher.from_pretrained`), the student as a
`FusionProxy.from_pretrained`-loadable directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..config_files import load_config_as
from ..errors import FusionProxyError
from ..training import TrainConfig, Trainer
from .data import DTPFPairDataset, resolve_events, training_pairs, write_events
from .losses import DTPFDistillationLoss, teacher_loss
from .teacher import DTPFTeacher, DTPFTeacherConfig
from .text import event_embeddings

EVENTS_FILE = "events.csv"


@dataclass
class DTPFRecipe:
    """One stage's YAML config.

    `train`: TrainConfig fields; `crop`: training crop side (a multiple of the network stride, 64);
    `model`: teacher (stage 1) or student (stage 2) config overrides; `text_encoder` (stage 1): "minilm" or a
    local CLIP weights directory; `alpha` (stage 2): Eq. 19 weights {base, feat, res}.
    """

    train: dict[str, Any]
    crop: int = 128
    model: dict[str, Any] = field(default_factory=dict)
    text_encoder: str = "minilm"
    alpha: dict[str, float] = field(default_factory=lambda: {"base": 1.0, "feat": 0.1, "res": 1.0})

    def __post_init__(self) -> None:
        if self.crop <= 0 or self.crop % 64:
            raise FusionProxyError(f"crop {self.crop} must be a positive multiple of 64 (the DTPF stride)")

    @classmethod
    def load(cls, name_or_path: str, stage: str, overrides: Sequence[str] = ()) -> "DTPFRecipe":
        """A bundled config (`cpu`, `gpu`) of `stage` ("teacher" or "distill"), or a YAML file."""
        return load_config_as(cls, name_or_path, "dtpf", prefix=f"{stage}_", overrides=overrides)[0]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dataset(data: Path, out: Path, labels: Path | None, recipe: DTPFRecipe, seed: int) -> DTPFPairDataset:
    pairs = training_pairs(data)
    events, sources = resolve_events(pairs, labels)
    out.mkdir(parents=True, exist_ok=True)
    write_events(out / EVENTS_FILE, pairs, events, sources)
    return DTPFPairDataset(pairs, events, recipe.crop, seed)


def train_teacher(data: Path, out: Path, recipe: DTPFRecipe, labels: Path | None = None) -> DTPFTeacher:
    """Stage 1: the text-guided teacher; saved to `out` (config.json + model.safetensors)."""
    train = TrainConfig.from_dict(recipe.train)
    table = event_embeddings(recipe.text_encoder)
    try:
        config = DTPFTeacherConfig(**{**recipe.model, "text_encoder": recipe.text_encoder, "text_dim": table.shape[1]})
    except TypeError as error:
        raise FusionProxyError(f"model: {error}") from None
    dataset = _dataset(data, out, labels, recipe, train.seed)
    torch.manual_seed(train.seed)  # identical initial weights on a rerun, before the checkpoint is restored
    teacher = DTPFTeacher(config)
    teacher.event_embeddings.copy_(table)
    run_info = {"recipe": "dtpf_teacher", **recipe.to_dict(), "data": str(Path(data).resolve())}
    trained = Trainer(out, teacher, dataset, teacher_loss, train, run_info=run_info).train()
    trained.save_pretrained(out)
    return trained


def distill(teacher_dir: Path, data: Path, out: Path, recipe: DTPFRecipe, labels: Path | None = None):
    """Stage 2: `dtpf_student` distilled from the teacher in `teacher_dir`; saved as a FusionProxy model."""
    from ..api import FusionProxy
    from ..students import create_student

    train = TrainConfig.from_dict(recipe.train)
    teacher = DTPFTeacher.from_pretrained(teacher_dir)
    dataset = _dataset(data, out, labels, recipe, train.seed)
    torch.manual_seed(train.seed)
    try:
        student = create_student("dtpf_student", **recipe.model)
    except (TypeError, ValueError) as error:
        raise FusionProxyError(f"model: {error}") from None
    try:
        loss = DTPFDistillationLoss(teacher, student.config, **{f"alpha_{k}": v for k, v in recipe.alpha.items()})
    except TypeError as error:
        raise FusionProxyError(f"alpha: {error} (known: base, feat, res)") from None
    run_info = {"recipe": "dtpf_distill", **recipe.to_dict(), "teacher": str(Path(teacher_dir).resolve()),
                "data": str(Path(data).resolve())}
    trained = Trainer(out, student, dataset, loss, train, run_info=run_info).train()
    model = FusionProxy(trained, {"random_init": False, "recipe": "dtpf", "teacher": str(teacher_dir)})
    model.save_pretrained(out)
    return model

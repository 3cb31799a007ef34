"""The settings of a distillation run (`fusionproxy distill --config ... --set ...`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config_files import build_config, load_config_as
from ..errors import FusionProxyError
from ..losses import DistillLossConfig
from ..misalignment import MisalignmentSchedule
from ..training import TrainConfig
from ..visibility import DegradationRange


@dataclass
class DistillConfig:
    """A whole distillation run: `train` (TrainConfig fields), `loss` (DistillLossConfig), and data options.

    `epochs`, when set, fixes `train.max_steps` to epochs x (training items // batch size).
    """

    train: dict[str, Any]  # TrainConfig fields as given: a resumed run compares this record, so it stays raw
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)
    student: dict[str, Any] = field(default_factory=dict)  # overrides of the student's config fields
    epochs: int | None = None
    misalignment: MisalignmentSchedule = field(default_factory=MisalignmentSchedule)  # Eq. 14; zeros = off
    degradation: DegradationRange = field(default_factory=DegradationRange)  # of the student's VIS; off by default
    val_items: int = 4  # held out from the end of the cache when no --val-cache is given
    # A trained model directory (or "default") whose weights start the student wherever it has a tensor of the
    # same name and shape: a smaller variant of that model (blocks removed, another activation) starts from it.
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and "max_steps" in self.train:
            raise FusionProxyError("give either epochs or train.max_steps, not both")
        if self.epochs is None and "max_steps" not in self.train:
            raise FusionProxyError("give epochs or train.max_steps")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> "DistillConfig":
        return build_config(cls, values, where)

    def train_config(self, num_items: int) -> TrainConfig:
        values = dict(self.train)
        if self.epochs is not None:
            values["max_steps"] = self.epochs * max(num_items // int(values.get("batch_size", 1)), 1)
        return TrainConfig.from_dict(values)

    @classmethod
    def record_defaults(cls) -> dict[str, Any]:
        """The record of a run with every option at its default: a setting added after a run started is taken
        at this value when that run's record lacks it, so the run still resumes."""
        return cls(train={"max_steps": 1}).to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": dict(self.train),
            "loss": self.loss.to_dict(),
            "student": dict(self.student),
            "epochs": self.epochs,
            "misalignment": dataclasses.asdict(self.misalignment),
            "degradation": dataclasses.asdict(self.degradation),
            "val_items": self.val_items,
            "init_from": self.init_from,
        }


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> DistillConfig:
    """A bundled config (`cpu`, `gpu`) or a YAML path, with `section.key=value` overrides."""
    return load_config_as(DistillConfig, name_or_path, "distill", overrides=overrides)[0]

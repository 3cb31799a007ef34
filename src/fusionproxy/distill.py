"""Distilling a student from the cached teacher ensemble (paper Sec. 3.3-3.5): data, validation, run, save.

    fusionproxy distill --cache DIR --student NAME --config cpu|gpu|FILE.yaml --out DIR [--set key=value ...]

The loop itself is the shared `fusionproxy.training.Trainer`; this module supplies the pieces it needs: the
cache items with misalignment injection on the student's IR input (Eq. 14), the loss of Eq. 7-12
(`fusionproxy.losses`), a validation callback (PNG grid + metrics against the ensemble mean) and the final
`FusionProxy.from_pretrained`-loadable directory.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kornia
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .config_files import load_config_file
from .errors import FusionProxyError
from .io import write_image
from .losses import DistillationLoss, DistillLossConfig
from .misalignment import MisalignmentSchedule
from .students import FusionStudent, create_student
from .students.blocks import InputAwareUncertaintyHead
from .training import TrainConfig, Trainer, item_generator
from .visibility import DegradationRange

IMAGE_KEYS = ("ir", "vis", "mean", "var")
SOURCE_METRICS = ("VIF", "Qabf")
GRID_DIR = "validation"


# ----- configuration -------------------------------------------------------------------------------------
@dataclass
class DistillConfig:
    """A whole distillation run: `train` (TrainConfig fields), `loss` (DistillLossConfig), and data options.

    `epochs`, when set, fixes `train.max_steps` to epochs x (training items // batch size).
    """

    train: dict[str, Any]
    loss: DistillLossConfig = field(default_factory=DistillLossConfig)
    student: dict[str, Any] = field(default_factory=dict)  # overrides of the student's config fields
    epochs: int | None = None
    misalignment: MisalignmentSchedule = field(default_factory=MisalignmentSchedule)  # Eq. 14; zeros = off
    degradation: DegradationRange = field(default_factory=DegradationRange)  # of the student's VIS; off by default
    val_items: int = 4  # held out from the end of the cache when no --val-cache is given

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> "DistillConfig":
        values = dict(values)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise FusionProxyError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
        if "train" not in values:
            raise FusionProxyError(f"{where}: missing the 'train' section")
        try:
            values["loss"] = DistillLossConfig.from_dict(values.get("loss") or {})
            values["misalignment"] = MisalignmentSchedule(**(values.get("misalignment") or {}))
            values["degradation"] = DegradationRange(**(values.get("degradation") or {}))
        except (TypeError, FusionProxyError) as error:
            raise FusionProxyError(f"{where}: {error}") from None
        config = cls(**values)
        if config.epochs is not None and "max_steps" in config.train:
            raise FusionProxyError(f"{where}: give either epochs or train.max_steps, not both")
        if config.epochs is None and "max_steps" not in config.train:
            raise FusionProxyError(f"{where}: give epochs or train.max_steps")
        return config

    def train_config(self, num_items: int) -> TrainConfig:
        values = dict(self.train)
        if self.epochs is not None:
            values["max_steps"] = self.epochs * max(num_items // int(values.get("batch_size", 1)), 1)
        return TrainConfig.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": dict(self.train),
            "loss": self.loss.to_dict(),
            "student": dict(self.student),
            "epochs": self.epochs,
            "misalignment": dataclasses.asdict(self.misalignment),
            "degradation": dataclasses.asdict(self.degradation),
            "val_items": self.val_items,
        }


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> DistillConfig:
    values, path = load_config_file(name_or_path, "distill", overrides=overrides)
    return DistillConfig.from_dict(values, where=str(path))


# ----- data ----------------------------------------------------------------------------------------------
def item_keys(backbones: Sequence[str]) -> list[str]:
    """The cache keys a training item needs for the given panel backbones."""
    return [*IMAGE_KEYS, *(f"feat_mean/{k}" for k in backbones), *(f"feat_var/{k}" for k in backbones)]


class DistillDataset(Dataset):
    """Cache items (float32) plus the student's inputs: `ir_input`, misaligned per item (Eq. 14), and, when the
    degradation injection is on, `vis_input`, the visible frame at a random night/fog level and severity.

    The degraded input keeps the clean pair's ensemble as its target, so the student learns to lean on the IR
    exactly where the visible frame fails. Every draw comes from `item_generator(seed, epoch, index)`, so
    resumed and multi-process runs see the same draws. Every target (`mean`, `var`, features) and the aligned
    `ir` and clean `vis` are left as cached.
    """

    def __init__(
        self,
        items: Dataset,
        indices: Sequence[int],
        keys: Sequence[str],
        misalignment: MisalignmentSchedule,
        seed: int,
        degradation: DegradationRange | None = None,
    ) -> None:
        self.items, self.indices, self.keys = items, list(indices), list(keys)
        self.misalignment, self.seed, self.epoch = misalignment, seed, 0
        self.degradation = degradation or DegradationRange()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        raw = self.items[self.indices[index]]
        item = {key: torch.as_tensor(raw[key]).float() for key in self.keys}
        generator = item_generator(self.seed, self.epoch, index)
        item["ir_input"] = self.misalignment.apply(item["ir"][None], self.epoch, generator)[0]
        if self.degradation.probability > 0:
            item["vis_input"] = self.degradation.sample(generator).apply(item["vis"], generator)
        return item


class StudentWithUncertainty(nn.Module):
    """Wraps the student so that its DDP-wrapped `forward` returns `(rgb, log_variance or None)`."""

    def __init__(self, student: FusionStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.student.forward_with_uncertainty(ir, vis)


# ----- validation ----------------------------------------------------------------------------------------
def _as_uint8(image: torch.Tensor) -> np.ndarray:
    """C x H x W float in [0, 1] -> H x W x C (or H x W) uint8, as the image would be written to disk."""
    array = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _source_metrics(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> dict[str, float]:
    """VIF and Q^AB/F of the fused image against its sources (CDDFuse/DTPF convention, `fusionproxy.metrics`)."""
    from .metrics import compute_metrics

    scores = compute_metrics(_as_uint8(fused), _as_uint8(ir), _as_uint8(vis), "cddfuse")
    return {name: scores[name] for name in SOURCE_METRICS}


def uncertainty_spearman(log_variance: torch.Tensor, variance: torch.Tensor) -> float:
    """Spearman rank correlation between the head's per-pixel std and the ensemble's actual std (one item).

    Rank-based, so a head that orders pixels by how much the teachers disagree scores 1 whatever its scale.
    """
    from scipy.stats import spearmanr

    def per_pixel(map_: torch.Tensor) -> np.ndarray:  # C x H x W (channel mean) or H x W -> H*W values
        map_ = map_.detach().float()
        return (map_.mean(dim=0) if map_.ndim == 3 else map_).flatten().cpu().numpy()

    predicted, actual = per_pixel(log_variance), per_pixel(variance)  # exp is monotone: log-variance ranks
    return float(spearmanr(predicted, actual).statistic)


class Validator:
    """Every epoch: a PNG grid (rows IR | VIS | ensemble mean | student), PSNR and SSIM of the student against
    the ensemble mean (the student's distillation fidelity), VIF, Q^AB/F against the sources, and, for a
    student with the uncertainty head, the Spearman correlation of its std with the ensemble's, averaged."""

    def __init__(self, items: Sequence[Mapping[str, torch.Tensor]]) -> None:
        self.items = [{key: torch.as_tensor(item[key]).float() for key in IMAGE_KEYS} for item in items]

    def __call__(self, model: nn.Module, step: int, out_dir: Path) -> dict[str, float]:
        device = next(model.parameters()).device
        rows, scores = [], []
        for item in self.items:
            ir, vis, mean = (item[k][None].to(device) for k in ("ir", "vis", "mean"))
            fused, log_variance = model(ir, vis)
            fused = fused.clamp(0.0, 1.0)
            score = {
                "psnr_mean": float(kornia.metrics.psnr(fused, mean, 1.0)),
                "ssim_mean": float(kornia.metrics.ssim(fused, mean, 11).mean()),
                **_source_metrics(ir[0], vis[0], fused[0]),
            }
            if log_variance is not None:
                score["uncertainty_spearman"] = uncertainty_spearman(log_variance[0], item["var"])
            scores.append(score)
            rows.append(torch.cat([ir.expand(-1, 3, -1, -1), vis, mean, fused], dim=-1)[0])
        width = max(row.shape[-1] for row in rows)  # a --val-cache may use another crop size
        grid = torch.cat([torch.nn.functional.pad(r, (0, width - r.shape[-1])) for r in rows], dim=-2)
        write_image(out_dir / GRID_DIR / f"step-{step:07d}.png", grid.permute(1, 2, 0).cpu().numpy())
        return {name: sum(s[name] for s in scores) / len(scores) for name in scores[0]}


# ----- the run -------------------------------------------------------------------------------------------
def mean_log_variance(items: Dataset, indices: Sequence[int], eps: float) -> float:
    """The mean over the training items' pixels of log(sigma^2 + eps), the uncertainty head's target."""
    return float(np.mean([float(torch.log(torch.as_tensor(items[i]["var"]) + eps).mean()) for i in indices]))


def start_uncertainty_head(student: FusionStudent, log_variance: float) -> None:
    """Start the log-variance head at the training set's mean log-variance (its bias; weights stay small).

    The head reads detached features and moves by about the learning rate per step, so from 0 it would spend
    thousands of steps just reaching the variance's scale (log(1e-3) = -6.9 where the teachers agree).
    """
    head = student.log_variance_head
    # The input-aware head ends in its output conv; the feature read-out in the projection before PixelShuffle.
    output = head.output if isinstance(head, InputAwareUncertaintyHead) else head[-2]
    with torch.no_grad():
        output.bias.fill_(log_variance)


def split_items(num_items: int, val_items: int, has_val_cache: bool) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): the last `val_items` are held out unless a val cache exists."""
    if has_val_cache or val_items == 0:
        return list(range(num_items)), []
    if val_items >= num_items:
        raise FusionProxyError(f"the cache has {num_items} items; cannot hold out val_items={val_items}")
    return list(range(num_items - val_items)), list(range(num_items - val_items, num_items))


def distill(
    out_dir: str | Path,
    student_name: str,
    config: DistillConfig,
    items: Dataset,
    panel: Mapping[str, nn.Module],
    sigma: Mapping[str, torch.Tensor],
    mean_var: Mapping[str, float],
    val_items: Dataset | None = None,
    provenance: Mapping[str, Any] | None = None,
    notes: Mapping[str, Any] | None = None,
) -> FusionStudent:
    """Train `student_name` on cache `items` with the panel backbones `panel` used for L_MFM; save the result.

    `panel` holds exactly the backbones the loss uses (the cache's, or the `loss.backbones` subset). Writes
    `config.json` + `model.safetensors` (`FusionProxy.from_pretrained`-loadable) beside the Trainer's logs
    and checkpoints in `out_dir`, and returns the trained student. `provenance` (what the run depends on:
    cache and panel identities) must match for a rerun to resume; `notes` (e.g. paths) only go to config.json.
    """
    out_dir = Path(out_dir)
    train_indices, held_out = split_items(len(items), config.val_items, val_items is not None)
    train_config = config.train_config(len(train_indices))
    dataset = DistillDataset(
        items, train_indices, item_keys(list(panel)), config.misalignment, train_config.seed, config.degradation
    )
    if val_items is not None:
        validation = [val_items[i] for i in range(min(config.val_items, len(val_items)))]
    else:
        validation = [items[i] for i in held_out]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)  # the same initial student in every process and every rerun
        student = create_student(student_name, **config.student)
    if getattr(student, "log_variance_head", None) is not None:
        start_uncertainty_head(student, mean_log_variance(items, train_indices, config.loss.eps))
    loss = DistillationLoss(config.loss, panel, sigma, mean_var)
    run_info = {
        "student": student_name,
        "student_config": student.config.to_dict(),
        "distill": config.to_dict(),
        **dict(provenance or {}),
    }
    started = time.perf_counter()
    trainer = Trainer(
        out_dir, StudentWithUncertainty(student), dataset, loss, train_config,
        validate=Validator(validation) if validation else None, run_info=run_info,
    )
    trained = trainer.train().student

    from accelerate import PartialState

    if PartialState().is_main_process:
        from .api import FusionProxy

        training = {
            **run_info,
            **dict(notes or {}),
            "train_items": len(train_indices),
            "max_steps": train_config.max_steps,
            "seconds_this_invocation": round(time.perf_counter() - started, 1),
            "torch": torch.__version__,
            "platform": platform.platform(),
        }
        FusionProxy(trained, {"random_init": False}).save_pretrained(out_dir, training=_json_safe(training))
    return trained


def _json_safe(value: Any) -> Any:
    """Infinite floats (tau = inf) become the string "inf" so config.json stays strict JSON."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def open_cache(
    cache_dir: str | Path,
    config: DistillConfig,
    weights_dir: str | Path | None = None,
    allow_random_panel: bool = False,
) -> tuple[Dataset, dict[str, nn.Module], dict[str, Any]]:
    """(cache items, the panel backbones the loss uses, provenance), checking the panel is the cache's own."""
    from .cache import CacheDataset
    from .foundation import create_backbone

    items = CacheDataset(cache_dir)
    if items.panel_is_random and not allow_random_panel:
        raise FusionProxyError(
            f"{cache_dir}: the cache was built with a random-init panel (tests only); "
            "rebuild it with real weights or pass --allow-random-panel"
        )
    names = list(config.loss.backbones) if config.loss.backbones is not None else list(items.backbones)
    unknown = [name for name in names if name not in items.backbones]
    if unknown:
        raise FusionProxyError(
            f"{cache_dir}: loss.backbones {', '.join(unknown)} not in the cache's panel ({', '.join(items.backbones)})"
        )
    cached = {entry["name"]: entry for entry in items.manifest["panel"]}
    panel = {}
    for name in names:
        directory = Path(weights_dir) / name if weights_dir is not None else None
        backbone = create_backbone(name, directory, random_init=cached[name]["random_init"])
        if backbone.identity() != cached[name]["identity"]:
            # Student features must come from the very weights the cached targets were computed with.
            raise FusionProxyError(
                f"{cache_dir}: backbone {name} is now {backbone.identity()}, but the cache was built with "
                f"{cached[name]['identity']}; rebuild the cache or restore those weights"
            )
        panel[name] = backbone
    provenance = {
        "cache_config_hash": items.manifest["config_hash"],
        "panel": {name: panel[name].identity() for name in names},
        "panel_is_random": items.panel_is_random,
    }
    return items, panel, provenance


def term_gradient_norms(
    student_name: str, config: DistillConfig, items: Dataset, panel: Mapping[str, nn.Module],
    indices: Sequence[int], student: FusionStudent | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Loss balance: per term (value, gradient norm on the student's parameters, the norm times the term's
    lambda) on one batch of cache items, without misalignment or degradation. Training follows the sum of the
    weighted gradients, so a term whose weighted norm dwarfs the others sets the direction alone. `student`
    (e.g. a trained one, for the balance at the end of a run) replaces the fresh student `distill` starts from.
    """
    if student is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train_config(len(items)).seed)  # the student `distill` would start from
            student = create_student(student_name, **config.student)
    names = list(panel)
    loss = DistillationLoss(config.loss, panel, {k: items.sigma[k] for k in names},
                            {k: items.mean_var[k] for k in names})
    raw = [items[i] for i in indices]
    batch = {key: torch.stack([torch.as_tensor(r[key]).float() for r in raw]) for key in item_keys(names)}
    rgb, log_variance = student.train().forward_with_uncertainty(batch["ir"], batch["vis"])
    lambdas = loss.weights
    parameters = [p for p in student.parameters() if p.requires_grad]
    norms = {}
    for name, value in loss.terms(rgb, log_variance, batch).items():
        grads = torch.autograd.grad(value, parameters, retain_graph=True, allow_unused=True)
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))
        norms[name] = (float(value.detach()), norm, norm * lambdas[name])
    return norms


def distill_from_cache(
    cache_dir: str | Path,
    out_dir: str | Path,
    student_name: str,
    config: DistillConfig,
    val_cache: str | Path | None = None,
    weights_dir: str | Path | None = None,
    allow_random_panel: bool = False,
) -> FusionStudent:
    """`fusionproxy distill`: open the cache, rebuild the panel it names, and run `distill`."""
    from .cache import CacheDataset

    items, panel, provenance = open_cache(cache_dir, config, weights_dir, allow_random_panel)
    names = list(panel)
    val_items = CacheDataset(val_cache) if val_cache is not None else None
    notes = {
        "cache": str(Path(cache_dir).resolve()),
        "val_cache": str(Path(val_cache).resolve()) if val_cache is not None else None,
    }
    return distill(
        out_dir, student_name, config, items, panel,
        {name: items.sigma[name] for name in names}, {name: items.mean_var[name] for name in names},
        val_items=val_items, provenance=provenance, notes=notes,
    )

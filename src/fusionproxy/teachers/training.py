"""Training the teachers on natural images with the shared `fusionproxy.training.Trainer`.

`masked`: the masked-diffusion teacher learns to restore a clean crop from two complementary masked views
(`masking.make_views`). `prior`: DDFM's unconditional prior learns to denoise clean crops (luminance or RGB).
Both use epsilon prediction with the DDPM training schedule (DDPMScheduler.add_noise). Every random draw of an
item (zoom, crop, flips, views, degradation, timestep, noise) comes from `training.item_generator(seed, epoch, i)`.
Configs are YAML files with sections `teacher`, `data`, `loss`, `train`, `validation`; the names `cpu` and `gpu`
resolve to the files shipped in `fusionproxy/configs/teachers/`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from ..config_files import load_config_as
from ..devices import set_cpu_threads
from ..errors import FusionProxyError
from ..io import IMAGE_SUFFIXES, ImageReadError, find_dataset_pairs, ir_to_tensor, read_ir, read_vis, vis_to_tensor
from ..model_dir import load_weights
from ..training import CHECKPOINT_DIR, CONFIG_FILE, TrainConfig, Trainer, complete_checkpoints, item_generator
from .ddfm import DDFMTeacher
from .denoiser import NoiseSchedule
from .masked import MaskedDiffusionTeacher
from .masking import MaskingConfig, make_views
from .pretrained import PretrainedTeacher

KINDS = ("masked", "prior")


# -- configuration ------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    """crop: training crop side (px); long_side: natural images are first resized so their longer side is this
    (RoadScene-like scale); repeats: crops per image per epoch; masking: the view construction (masked only);
    extra_images: more folders of RGB frames trained on beside `--images` (e.g. RoadScene-train visible frames;
    never a test set), paths relative to the working directory; scale: the range of a random zoom per crop
    (log-uniform; a crop of `crop / s` pixels resized to `crop`; [1, 1]: no zoom, no random draw)."""

    crop: int = 64
    long_side: int = 384
    repeats: int = 16
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    extra_images: list[str] = field(default_factory=list)
    scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        self.scale = tuple(float(s) for s in self.scale)  # YAML gives a list
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")


@dataclass
class ValidationConfig:
    """The validation grid: the first `pairs` pairs of the validation folder, resized to `long_side`."""

    pairs: int = 3
    long_side: int = 160
    num_samples: int = 2


@dataclass
class TeacherLossConfig:
    weighting: str = "uniform"  # see EpsilonLoss


@dataclass
class DDFMSettings:
    """DDFM's sampling settings (the bundled `ddfm` file); None: the teacher's own value."""

    steps: int | None = None
    lam: float | None = None
    rho: float | None = None
    stretch: bool | None = None


@dataclass
class TeacherTrainingConfig:
    config_noun: ClassVar[str] = "section"

    train: TrainConfig
    teacher: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the teacher's `build`
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    loss: TeacherLossConfig = field(default_factory=TeacherLossConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            "data": dataclasses.asdict(self.data),
            "train": self.train.to_dict(),
            "validation": dataclasses.asdict(self.validation),
            "loss": dataclasses.asdict(self.loss),
        }


def load_training_config(name_or_path: str, kind: str, overrides: list[str] = ()) -> TeacherTrainingConfig:
    """The config `cpu`, `gpu` or a YAML path for `kind` ("masked" / "prior"), with `--set` overrides."""
    return load_config_as(TeacherTrainingConfig, name_or_path, "teachers", prefix=f"{kind}_", overrides=overrides)[0]


def load_ddfm_settings(name_or_path: str) -> dict[str, Any]:
    """DDFM sampling settings (steps, lam, rho) from the bundled `ddfm` file or a YAML path."""
    settings = load_config_as(DDFMSettings, name_or_path, "teachers")[0]
    return {name: value for name, value in dataclasses.asdict(settings).items() if value is not None}


# -- data ---------------------------------------------------------------------------------------------------
def load_natural_images(folder: str | Path, long_side: int) -> tuple[list[np.ndarray], list[str]]:
    """RGB uint8 images of `folder`, resized so the longer side is `long_side`; also the unreadable files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FusionProxyError(f"{folder}: not a directory of training images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images, bad = [], []
    for path in files:
        try:
            rgb = read_vis(path)
        except ImageReadError as error:
            bad.append(str(error))
            continue
        scale = long_side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        images.append(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if not images:
        raise FusionProxyError(f"{folder}: no readable images ({len(bad)} unreadable)")
    return images, bad


def load_training_images(images_dir: str | Path, data: DataConfig) -> list[np.ndarray]:
    """The frames of `images_dir` and of every `data.extra_images` folder, resized to `data.long_side`;
    unreadable files are reported and skipped."""
    images = []
    for folder in [images_dir, *data.extra_images]:
        loaded, bad = load_natural_images(folder, data.long_side)
        images += loaded
        for message in bad:
            print(f"skipped: {message}")
    return images


class NaturalCrops(Dataset):
    """Random crops (with a random zoom when `data.scale` asks for one, and random horizontal/vertical flips) of
    natural images, `repeats` per image per epoch, noised at a random DDPM timestep. Subclasses decide what one
    item holds."""

    def __init__(self, images: list[np.ndarray], data: DataConfig, seed: int, schedule: NoiseSchedule) -> None:
        self.images, self.crop_size, self.repeats, self.seed = images, data.crop, data.repeats, seed
        self.scale = data.scale
        self.noise_scheduler = schedule.ddpm()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def random_crop(self, index: int, generator: torch.Generator) -> torch.Tensor:
        image = torch.from_numpy(self.images[index % len(self.images)]).permute(2, 0, 1).float() / 255.0
        size = self.crop_size
        if self.scale != (1.0, 1.0):  # a log-uniform zoom; a fixed one (low == high) draws nothing
            low, high = np.log(self.scale)
            fraction = float(torch.rand((), generator=generator)) if high > low else 0.0
            zoom = float(np.exp(low + (high - low) * fraction))
            size = min(max(8, round(self.crop_size / zoom)), *image.shape[-2:])
        if min(image.shape[-2:]) < size:  # small images are enlarged to fit one crop
            scale = size / min(image.shape[-2:])
            image = F.interpolate(image[None], scale_factor=scale, mode="bicubic", align_corners=False)[0].clamp(0, 1)
        top = int(torch.randint(image.shape[-2] - size + 1, (), generator=generator))
        left = int(torch.randint(image.shape[-1] - size + 1, (), generator=generator))
        crop = image[:, top : top + size, left : left + size]
        if size != self.crop_size:
            crop = F.interpolate(crop[None], size=(self.crop_size,) * 2, mode="bilinear", antialias=True,
                                 align_corners=False)[0].clamp(0, 1)
        flips = torch.rand(2, generator=generator) < 0.5
        if flips[0]:
            crop = crop.flip(-1)
        if flips[1]:
            crop = crop.flip(-2)
        return crop.contiguous()

    def noised(self, clean: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for x_0 in [-1, 1] (DDPM forward process)."""
        timestep = torch.randint(self.noise_scheduler.config.num_train_timesteps, (1,), generator=generator)
        noise = torch.randn(clean.shape, generator=generator)
        noisy = self.noise_scheduler.add_noise(clean, noise, timestep)
        return {"noisy": noisy, "timesteps": timestep[0], "noise": noise}


class MaskedViewsDataset(NaturalCrops):
    """Items for the masked teacher: the noised clean crop and its two masked views (all in [-1, 1])."""

    def __init__(self, images: list[np.ndarray], data: DataConfig, seed: int, schedule: NoiseSchedule):
        super().__init__(images, data, seed, schedule)
        self.masking = data.masking

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = item_generator(self.seed, self.epoch, index)
        clean = self.random_crop(index, generator)
        views = make_views(clean, generator, self.masking)
        return {
            **self.noised(clean * 2 - 1, generator),
            "view_a": views.view_a * 2 - 1,
            "view_b": views.view_b * 2 - 1,
        }


class PriorDataset(NaturalCrops):
    """Items for DDFM's unconditional prior: a noised crop, as luminance (1 channel) or RGB, in [-1, 1]."""

    def __init__(self, images: list[np.ndarray], data: DataConfig, seed: int, schedule: NoiseSchedule, channels: int):
        super().__init__(images, data, seed, schedule)
        self.channels = channels

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = item_generator(self.seed, self.epoch, index)
        clean = self.random_crop(index, generator)
        if self.channels == 1:
            clean = kornia.color.rgb_to_ycbcr(clean[None])[0, :1]
        return self.noised(clean * 2 - 1, generator)


class EpsilonLoss:
    """The epsilon-prediction MSE, per item weighted by `weighting`.

    "uniform": the DDPM simple loss. "snr_plus_one": divided by abar_t, which equals the v-prediction loss, i.e.
    (1 + SNR_t) x the clean-image MSE; with the `clean` output it keeps weight on the high-noise steps, whose
    clean estimates the uniform loss leaves untrained (weight SNR_t -> 0) and whose errors a few-step sampler
    otherwise carries into the final sample.
    """

    WEIGHTINGS = ("uniform", "snr_plus_one")

    def __init__(self, schedule: NoiseSchedule, weighting: str = "uniform", conditional: bool = False) -> None:
        if weighting not in self.WEIGHTINGS:
            raise FusionProxyError(f"unknown loss weighting '{weighting}' (known: {', '.join(self.WEIGHTINGS)})")
        self.alphas_cumprod = schedule.ddpm().alphas_cumprod
        self.weighting, self.conditional = weighting, conditional

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        inputs = [batch["noisy"], batch["timesteps"]]
        if self.conditional:
            inputs += [batch["view_a"], batch["view_b"]]
        per_item = (model(*inputs) - batch["noise"]).pow(2).mean(dim=(1, 2, 3))
        if self.weighting == "uniform":
            return per_item.mean(), {}
        weights = 1.0 / self.alphas_cumprod.to(per_item.device)[batch["timesteps"]]
        return (per_item * weights).mean(), {"eps_mse": float(per_item.detach().mean())}


# -- validation ---------------------------------------------------------------------------------------------
def _resized_pair(ir_path: Path, vis_path: Path, long_side: int) -> tuple[torch.Tensor, torch.Tensor]:
    ir, vis = read_ir(ir_path), read_vis(vis_path)
    scale = long_side / max(ir.shape)
    size = (max(8, round(ir.shape[1] * scale)), max(8, round(ir.shape[0] * scale)))
    ir = cv2.resize(ir, size, interpolation=cv2.INTER_AREA)
    vis = cv2.resize(vis, size, interpolation=cv2.INTER_AREA)
    return ir_to_tensor(ir), vis_to_tensor(vis)


class FusionGrid:
    """Validation callback: fuses a few IR/VIS pairs and writes `validation/step-XXXXXXX.png`, one row per pair
    (IR | VIS | samples... | mean). Reports the mean per-pixel spread of the samples (their diversity)."""

    def __init__(self, pairs_dir: str | Path, config: ValidationConfig) -> None:
        listing = find_dataset_pairs(pairs_dir)
        self.pairs = [_resized_pair(ir, vis, config.long_side) for _, ir, vis in listing.pairs[: config.pairs]]
        self.num_samples = config.num_samples

    def __call__(self, model: nn.Module, step: int, out_dir: Path) -> dict[str, float]:
        assert isinstance(model, PretrainedTeacher)
        rows, spreads = [], []
        for ir, vis in self.pairs:
            samples = model.sample(ir, vis, self.num_samples, seed=0)
            spreads.append(float(samples.std(dim=0).mean()) if self.num_samples > 1 else 0.0)
            tiles = [ir.expand(1, 3, -1, -1), vis, *samples.split(1), samples.mean(0, keepdim=True)]
            rows.append(torch.cat([t[0] for t in tiles], dim=-1))
        width = max(r.shape[-1] for r in rows)
        grid = torch.cat([F.pad(r, (0, width - r.shape[-1])) for r in rows], dim=-2)
        path = out_dir / "validation" / f"step-{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = (grid.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(path)
        return {"sample_spread": float(np.mean(spreads))}


# -- the two training runs ----------------------------------------------------------------------------------
TEACHER_CLASSES: dict[str, type[PretrainedTeacher]] = {"masked": MaskedDiffusionTeacher, "prior": DDFMTeacher}


def build_teacher(kind: str, teacher_config: dict[str, Any]) -> PretrainedTeacher:
    """The untrained teacher that `kind` ("masked" or "prior") trains, from the config's `teacher` section."""
    if kind not in TEACHER_CLASSES:
        raise FusionProxyError(f"unknown teacher training '{kind}' (known: {', '.join(KINDS)})")
    return TEACHER_CLASSES[kind].build(**teacher_config)


def build_training(
    kind: str, images: list[np.ndarray], config: TeacherTrainingConfig
) -> tuple[PretrainedTeacher, Dataset, Callable]:
    """The untrained teacher, its dataset and its loss for `kind` ("masked" or "prior")."""
    seed = config.train.seed
    teacher = build_teacher(kind, config.teacher)
    if isinstance(teacher, MaskedDiffusionTeacher):
        loss = EpsilonLoss(teacher.schedule, config.loss.weighting, conditional=True)
        return teacher, MaskedViewsDataset(images, config.data, seed, teacher.schedule), loss
    assert isinstance(teacher, DDFMTeacher)
    loss = EpsilonLoss(teacher.schedule, config.loss.weighting)
    return teacher, PriorDataset(images, config.data, seed, teacher.schedule, teacher.channels), loss


SAMPLING_SETTINGS = ("steps", "eta", "lam", "rho", "stretch")


def set_sampling(teacher: PretrainedTeacher, settings: Sequence[str]) -> None:
    """Apply `NAME=VALUE` sampling settings (values parsed as YAML) that the teacher has, refusing others."""
    for item in settings:
        name, sep, text = item.partition("=")
        if not sep or name not in SAMPLING_SETTINGS or not hasattr(teacher, name):
            known = ", ".join(n for n in SAMPLING_SETTINGS if hasattr(teacher, n))
            raise FusionProxyError(f"--set {item}: not a sampling setting of the {teacher.name} teacher ({known})")
        current, value = getattr(teacher, name), yaml.safe_load(text)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(current, bool):
            valid = isinstance(value, bool)
        elif isinstance(current, int):
            valid = number and float(value).is_integer()
        else:
            valid = number
        if not valid:
            raise FusionProxyError(f"--set {item}: {name} takes a {type(current).__name__}")
        value = type(current)(value)
        setattr(teacher, name, value)


def teacher_from_checkpoint(kind: str, run_dir: str | Path, step: int | None = None) -> PretrainedTeacher:
    """The teacher of a training run's checkpoint (`step`, or the latest complete one), e.g. to measure quality
    against training length or to keep an earlier checkpoint; save it with `save_pretrained`."""
    run_dir = Path(run_dir)
    record_path = run_dir / CONFIG_FILE
    if not record_path.is_file():
        raise FusionProxyError(f"{record_path}: not found; {run_dir} is not a teacher training run")
    checkpoints = {int(c.name.removeprefix("step-")): c for c in complete_checkpoints(run_dir)}
    if not checkpoints:
        raise FusionProxyError(f"{run_dir / CHECKPOINT_DIR}: no complete checkpoint")
    step = max(checkpoints) if step is None else step
    if step not in checkpoints:
        complete = ", ".join(map(str, checkpoints))
        raise FusionProxyError(f"{run_dir}: no checkpoint at step {step} (complete: {complete})")
    teacher = build_teacher(kind, json.loads(record_path.read_text())["run"]["teacher"])
    load_weights(teacher, checkpoints[step])  # accelerate's save_state names the weights as a model directory does
    return teacher


def train_teacher(
    kind: str,
    images_dir: str | Path,
    config: TeacherTrainingConfig,
    out_dir: str | Path,
    validation_pairs: str | Path | None = None,
) -> PretrainedTeacher:
    """Train (or resume) a teacher and save it to `out_dir` (config.json + model.safetensors)."""
    torch.manual_seed(config.train.seed)  # the initial weights
    teacher, dataset, loss = build_training(kind, load_training_images(images_dir, config.data), config)
    validate = FusionGrid(validation_pairs, config.validation) if validation_pairs else None
    run_info = {"teacher": kind, "images": str(Path(images_dir).resolve()), **config.to_dict()}
    run_info.pop("train")  # the Trainer records the TrainConfig itself
    # Runs recorded before `extra_images` and `scale` existed resume with their values of that time.
    run_defaults = {"data": {"extra_images": [], "scale": [1.0, 1.0]}}
    trainer = Trainer(out_dir, teacher, dataset, loss, config.train, validate=validate, run_info=run_info,
                      run_defaults=run_defaults)
    trained = trainer.train()
    assert isinstance(trained, PretrainedTeacher)
    trained.save_pretrained(out_dir)
    return trained


def train_teacher_from_folders(
    kind: str,
    images: str | Path,
    out: str | Path,
    config: str = "cpu",
    overrides: Sequence[str] = (),
    val_pairs: str | Path | None = None,
    threads: int = 0,
) -> PretrainedTeacher:
    """`fusionproxy teacher train`: config by name or path with `--set` overrides; `val_pairs` defaults to
    roadscene/train beside `images`; `threads` > 0 sets torch's CPU threads (1 is fastest on a busy CPU)."""
    set_cpu_threads(threads)
    if kind not in KINDS:
        raise FusionProxyError(f"unknown teacher training '{kind}' (choose {' or '.join(KINDS)})")
    images = Path(images)
    if val_pairs is None:
        default = images.parent / "roadscene" / "train"
        val_pairs = default if default.is_dir() else None
    elif not Path(val_pairs).is_dir():
        raise FusionProxyError(f"{val_pairs}: not a directory of IR/VIS pairs")
    return train_teacher(kind, images, load_training_config(config, kind, list(overrides)), out, val_pairs)

"""What both diffusion teachers share: a directory format, identity checksums, and the sampling frame.

A teacher directory holds `config.json` ({"teacher": name, "config": {...}}) and `model.safetensors`.
`sample` checks the pair, pads it to the network's size multiple (reflection), gives every sample its own
generator (sample k of seed s is the same whatever num_samples is), calls the teacher's `_sample`, and crops.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, TypeVar

import torch
import torch.nn.functional as F
from rich.progress import track
from safetensors.torch import load_file, save_file

from ..errors import FusionProxyError, MissingWeightsError
from .base import Teacher

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

T = TypeVar("T", bound="PretrainedTeacher")


def sample_generators(seed: int, num_samples: int) -> list[torch.Generator]:
    """One CPU generator per sample, derived from (seed, k), so each sample is reproducible on its own."""
    generators = []
    for k in range(num_samples):
        digest = hashlib.sha256(f"teacher-sample:{seed}:{k}".encode()).digest()
        generators.append(torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1)))
    return generators


def initial_noise(generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """x_T: one standard-normal image of `shape` (C x H x W) per generator."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


def with_progress(steps: Iterable[Any], show: bool, label: str) -> Iterator[Any]:
    steps = list(steps)
    return iter(track(steps, description=label, disable=not show, transient=True))


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom/right of B x C x H x W to multiples of `multiple` (reflection when the image allows it)."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


class PretrainedTeacher(Teacher):
    """A Teacher with a config dict and safetensors weights; subclasses implement `_sample` and the config."""

    name: ClassVar[str]

    # -- what subclasses provide ------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls: type[T], config: dict[str, Any]) -> T:
        raise NotImplementedError

    @property
    def multiple(self) -> int:
        raise NotImplementedError

    def _sample(
        self, ir: torch.Tensor, vis: torch.Tensor, generators: list[torch.Generator], progress: bool
    ) -> torch.Tensor:
        """ir 1 x 1 x H x W, vis 1 x 3 x H x W in [0, 1], H and W multiples of `multiple`; N x 3 x H x W out."""
        raise NotImplementedError

    # -- the Teacher contract ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, ir: torch.Tensor, vis: torch.Tensor, num_samples: int, seed: int, progress: bool = False
    ) -> torch.Tensor:
        if ir.dim() != 4 or ir.shape[:2] != (1, 1):
            raise ValueError(f"ir must be 1 x 1 x H x W, got {tuple(ir.shape)}")
        if vis.dim() != 4 or vis.shape[:2] != (1, 3) or vis.shape[-2:] != ir.shape[-2:]:
            raise ValueError(f"vis must be 1 x 3 x H x W matching ir {tuple(ir.shape)}, got {tuple(vis.shape)}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        height, width = ir.shape[-2:]
        parameter = next(self.parameters())
        ir, vis = (pad_to_multiple(x.to(parameter), self.multiple) for x in (ir, vis))
        was_training = self.training
        self.eval()
        samples = self._sample(ir, vis, sample_generators(seed, num_samples), progress)
        self.train(was_training)
        return samples[..., :height, :width].clamp(0.0, 1.0).float()

    def identity(self) -> str:
        """`name-<first 16 hex of sha256>` over the config and every weight tensor."""
        digest = hashlib.sha256(json.dumps(self.config_dict(), sort_keys=True).encode())
        for key, tensor in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"{self.name}-{digest.hexdigest()[:16]}"

    # -- persistence ------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(weights, str(directory / WEIGHTS_FILE))
        record = {"teacher": self.name, "config": self.config_dict()}
        (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2))

    @classmethod
    def from_pretrained(cls: type[T], directory: str | Path) -> T:
        record = read_teacher_config(directory)
        if record["teacher"] != cls.name:
            path = Path(directory) / CONFIG_FILE
            raise FusionProxyError(f"{path}: a '{record['teacher']}' teacher, not '{cls.name}'")
        teacher = cls.from_config(record["config"])
        weights_path = Path(directory) / WEIGHTS_FILE
        if not weights_path.is_file():
            raise MissingWeightsError(f"{weights_path}: weights file missing")
        try:
            teacher.load_state_dict(load_file(str(weights_path)))
        except (RuntimeError, OSError) as error:
            first_line = str(error).strip().splitlines()[0]
            raise FusionProxyError(f"{weights_path}: weights do not fit the config ({first_line})") from None
        return teacher.eval()


def read_teacher_config(directory: str | Path) -> dict[str, Any]:
    """The parsed `config.json` of a teacher directory, with errors that name the file."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise MissingWeightsError(
            f"{path}: no teacher config; train one with `fusionproxy teacher train masked|prior --out {directory}`"
        )
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise FusionProxyError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(record, dict) or "teacher" not in record or "config" not in record:
        raise FusionProxyError(f"{path}: expected keys 'teacher' and 'config'")
    return record

"""What both diffusion teachers share: a directory format, identity checksums, and the sampling frame.

A teacher directory is the package's shared model format (`fusionproxy.model_dir`, registry "teacher").
`sample` checks the pair, pads it to the network's size multiple (reflection), gives every sample its own
generator (sample k of seed s is the same whatever num_samples is), calls the teacher's `_sample`, and crops.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Iterable, Iterator, TypeVar

import torch
import torch.nn.functional as F
from rich.progress import track

from ..errors import FusionProxyError
from ..model_dir import SavedModel
from .base import Teacher

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


class PretrainedTeacher(SavedModel, Teacher):
    """A Teacher with a config dict and safetensors weights; subclasses implement `_sample` and the config."""

    name: ClassVar[str]
    model_registry = "teacher"
    legacy_key = "teacher"
    missing_hint = "; train one with `fusionproxy teacher train masked|prior --out DIR`"

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

    # -- persistence (fusionproxy.model_dir) ------------------------------------------------------------
    def model_entry(self) -> str:
        return self.name

    def model_config(self) -> dict[str, Any]:
        return self.config_dict()

    @classmethod
    def from_model_config(cls: type[T], name: str, config: dict[str, Any], record: dict[str, Any]) -> T:
        if name != cls.name:
            raise FusionProxyError(f"a '{name}' teacher, not '{cls.name}'")
        return cls.from_config(config)


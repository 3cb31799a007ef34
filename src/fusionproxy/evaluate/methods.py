"""The fusion methods an evaluation compares, parsed from `NAME=SPEC` strings.

SPEC is one of
- `baseline:NAME`        a built-in classical baseline (`fusionproxy.baselines`),
- `teacher:DIR[:N]`      a diffusion teacher: one sample, or the mean of an N-sample ensemble (seeded per image),
- `model:DIR`            a trained student directory (`FusionProxy.from_pretrained`; `model:default` = bundled),
- `folder:DIR`           fused images of any other method, matched by stem (`DIR/<dataset>/` if it exists),
- `mean:A+B[+...]`       the pixel mean of other methods' outputs in the same evaluation (by name): with the
                         rows `teacher:D1:N` and `teacher:D2:N` it is the 2N-sample ensemble mean of Eq. 3, the
                         student's distillation target, at no extra sampling cost,
- `source:ir|vis`        a source frame itself as the output (IR as 3-channel grey; visible unchanged): the
                         reference rows of what each source alone scores (e.g. TTC 1 for `source:ir`),
- `DIR`                  `model:` if it holds a config.json, else `folder:` if it holds images, else `model:`.
Models and teachers load lazily, so a rerun whose outputs are all cached never loads weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines import get_baseline, list_baselines
from ..errors import FusionProxyError
from ..io import IMAGE_SUFFIXES

SOURCES = ("ir", "vis")


@dataclass
class Method:
    """One row of the result tables. `runs` is False for folders of precomputed outputs."""

    name: str
    spec: str
    runs: bool = True

    def fuse(self, ir: np.ndarray, vis: np.ndarray, seed: int) -> np.ndarray:
        """RGB H x W x 3 float in [0, 1] from ir H x W and vis H x W x 3; `seed` drives any sampling."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Load weights (kept out of the per-image timings)."""


@dataclass
class BaselineMethod(Method):
    baseline: str = ""

    def fuse(self, ir: np.ndarray, vis: np.ndarray, seed: int) -> np.ndarray:
        return get_baseline(self.baseline)(ir, vis)


@dataclass
class ModelMethod(Method):
    directory: Path = Path()
    device: str = "cpu"  # `evaluate --device`
    _model: Any = field(default=None, repr=False)

    def prepare(self) -> None:
        if self._model is None:
            from ..api import FusionProxy

            self._model = FusionProxy.from_pretrained(self.directory, self.device)

    def fuse(self, ir: np.ndarray, vis: np.ndarray, seed: int) -> np.ndarray:
        self.prepare()
        return np.asarray(self._model.fuse(ir, vis), dtype=np.float32)


@dataclass
class TeacherMethod(Method):
    directory: Path = Path()
    num_samples: int = 1
    _teacher: Any = field(default=None, repr=False)

    def prepare(self) -> None:
        if self._teacher is None:
            from ..teachers import load_teacher

            self._teacher = load_teacher(self.directory)

    def fuse(self, ir: np.ndarray, vis: np.ndarray, seed: int) -> np.ndarray:
        import torch

        from ..io import ir_to_tensor, tensor_to_image, vis_to_tensor

        self.prepare()
        with torch.no_grad():
            samples = self._teacher.sample(ir_to_tensor(ir), vis_to_tensor(vis), self.num_samples, seed)
        # The ensemble mean is the distillation target of Eq. 3; N = 1 is a single teacher draw.
        return tensor_to_image(samples.mean(dim=0, keepdim=True).clamp(0.0, 1.0))


@dataclass
class SourceMethod(Method):
    """Passes one source frame through: `source` is "ir" or "vis"."""

    source: str = "ir"

    def fuse(self, ir: np.ndarray, vis: np.ndarray, seed: int) -> np.ndarray:
        return np.repeat(ir[..., None], 3, axis=2) if self.source == "ir" else vis


@dataclass
class FolderMethod(Method):
    directory: Path = Path()

    def find(self, dataset: str, stem: str) -> Path | None:
        """The fused image for `stem`, looked up in `DIR/<dataset>/` first, then in `DIR/`."""
        for folder in (self.directory / dataset, self.directory):
            if folder.is_dir():
                matches = sorted(p for p in folder.glob(f"{stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
                if matches:
                    return matches[0]
        return None


@dataclass
class MeanMethod(Method):
    """Resolved by the evaluation, which averages the cached outputs of the methods named in `parts`."""

    parts: tuple[str, ...] = ()


def _has_images(directory: Path) -> bool:
    candidates = [directory, *(p for p in directory.iterdir() if p.is_dir())]
    return any(p.suffix.lower() in IMAGE_SUFFIXES for folder in candidates for p in folder.iterdir())


def _existing_dir(text: str, spec: str) -> Path:
    directory = Path(text).expanduser()
    if not directory.is_dir():
        raise FusionProxyError(f"{directory}: not a directory (method '{spec}')")
    return directory


def parse_method(text: str) -> Method:
    """Parse `[NAME=]SPEC` (see the module docstring); the name defaults to the baseline or directory name."""
    name, _, spec = text.partition("=") if "=" in text else ("", "", text)
    kind, _, rest = spec.partition(":")
    if kind == "baseline":
        if rest not in list_baselines():
            raise FusionProxyError(f"unknown baseline '{rest}' in '{text}' (known: {', '.join(list_baselines())})")
        return BaselineMethod(name or rest, spec, baseline=rest)
    if kind == "teacher":
        directory, count = rest, "1"
        head, _, tail = rest.rpartition(":")
        if head and tail.isdigit():
            directory, count = head, tail
        if int(count) < 1:
            raise FusionProxyError(f"method '{text}': the ensemble size must be at least 1")
        path = _existing_dir(directory, text)
        label = name or (f"{path.name}-x{count}" if int(count) > 1 else path.name)
        return TeacherMethod(label, spec, directory=path, num_samples=int(count))
    if kind == "source":
        if rest not in SOURCES:
            raise FusionProxyError(f"unknown source '{rest}' in '{text}' (known: {', '.join(SOURCES)})")
        return SourceMethod(name or rest, spec, source=rest)
    if kind == "mean":
        parts = tuple(part for part in rest.split("+") if part)
        if len(parts) < 2:
            raise FusionProxyError(f"method '{text}': mean: needs at least two method names joined by '+'")
        return MeanMethod(name or "mean-" + "+".join(parts), spec, parts=parts)
    if kind == "model" and rest == "default":  # the model bundled with the package
        return ModelMethod(name or "fusionproxy", spec, directory=Path(rest))
    if kind in ("model", "folder"):
        path = _existing_dir(rest, text)
    else:
        path = _existing_dir(spec, text)
        kind = "folder" if not (path / "config.json").is_file() and _has_images(path) else "model"
    cls = FolderMethod if kind == "folder" else ModelMethod
    return cls(name or path.name, spec, runs=kind != "folder", directory=path)


def default_baselines() -> list[Method]:
    """The reference rows every table gets unless the user drops them."""
    return [parse_method(f"baseline:{name}") for name in ("average", "max", "laplacian")]


def with_baselines(methods: list[Method]) -> list[Method]:
    """`methods` followed by each default baseline the user did not already list."""
    specs = {m.spec for m in methods}
    return methods + [b for b in default_baselines() if b.spec not in specs]

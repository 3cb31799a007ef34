"""Visibility degradations of the visible frame: night and fog, one seeded module for evaluation and training.

A thermal camera sees through darkness and haze, a visible camera does not, so only the visible frame is
degraded. Every level works on float RGB in [0, 1] and ends quantised to 8 bits, as a camera would deliver it:

* night: `v' = g * v**2.2 + N(0, s)`: the frame darkened in linear light by the gain `g`, plus read noise;
* fog: atmospheric scattering `v' = v * tr + A * (1 - tr)`, `tr = exp(-beta * d)`, airlight `A = 0.9`, the
  depth proxy `d` rising linearly from 0 at the bottom row to 1 at the top row, and `beta` solved per frame so
  that the mean transmission equals the level's target (`fog_beta`);
* fog then night, and `none`.

`LEVELS` holds the named evaluation levels; `DegradationRange.sample` draws a random kind and severity per
training item from the same formulas, so the student sees exactly what evaluation measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import brentq

from .errors import FusionProxyError

AIRLIGHT = 0.9
GAMMA = 2.2
KINDS = ("none", "night", "fog", "fog+night")


@dataclass(frozen=True)
class Degradation:
    """One severity of one kind. `gain`/`noise` are the night parameters, `transmission` the fog's mean tr."""

    name: str
    kind: str = "none"
    gain: float = 1.0
    noise: float = 0.0
    transmission: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FusionProxyError(f"degradation {self.name}: unknown kind {self.kind!r} (known: {', '.join(KINDS)})")
        if not 0.0 < self.gain <= 1.0 or not 0.0 < self.transmission <= 1.0 or self.noise < 0:
            raise FusionProxyError(f"degradation {self.name}: gain and transmission must be in (0, 1], noise >= 0")

    def apply(self, vis: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Degrade `vis` (3 x H x W or B x 3 x H x W, float in [0, 1]); the result is 8-bit quantised in [0, 1].

        `generator` drives the read noise (needed whenever `noise > 0`, so every result is reproducible).
        """
        out = vis.clamp(0.0, 1.0)
        if self.kind in ("fog", "fog+night"):
            out = fog(out, self.transmission)
        if self.kind in ("night", "fog+night"):
            out = night(out, self.gain, self.noise, generator)
        return quantise(out)


def quantise(image: torch.Tensor) -> torch.Tensor:
    """Round to the 256 levels of an 8-bit frame (a camera's output), staying in float [0, 1]."""
    return torch.round(image.clamp(0.0, 1.0) * 255.0) / 255.0


def night(vis: torch.Tensor, gain: float, noise: float, generator: torch.Generator | None) -> torch.Tensor:
    """`g * v**2.2 + N(0, s)`, not yet quantised."""
    dark = gain * vis.clamp(0.0, 1.0) ** GAMMA
    if noise > 0:
        if generator is None:
            raise FusionProxyError("night degradation with read noise needs a seeded generator")
        dark = dark + noise * torch.randn(vis.shape, generator=generator).to(vis)
    return dark


def depth_proxy(height: int) -> torch.Tensor:
    """d per row (H values): 0 at the bottom row, 1 at the top row."""
    return torch.linspace(1.0, 0.0, height, dtype=torch.float64) if height > 1 else torch.zeros(1, dtype=torch.float64)


def fog_beta(height: int, transmission: float) -> float:
    """The scattering coefficient whose mean transmission `mean(exp(-beta d))` over the frame's rows is the target."""
    if transmission >= 1.0:
        return 0.0
    d = depth_proxy(height).numpy()
    floor = float(np.mean(d == 0.0))  # rows at zero depth keep tr = 1 whatever beta is
    if transmission <= floor:
        raise FusionProxyError(f"fog: a mean transmission of {transmission} is unreachable on a {height}-row frame")
    return float(brentq(lambda beta: float(np.mean(np.exp(-beta * d))) - transmission, 1e-9, 1e4, xtol=1e-10))


def transmission_map(height: int, transmission: float) -> torch.Tensor:
    """tr per row (H x 1), with `beta` from `fog_beta`."""
    return torch.exp(-fog_beta(height, transmission) * depth_proxy(height))[:, None]


def fog(vis: torch.Tensor, transmission: float) -> torch.Tensor:
    """`v * tr + A (1 - tr)` with the frame's mean transmission equal to `transmission`."""
    tr = transmission_map(vis.shape[-2], transmission).to(vis)
    return vis * tr + AIRLIGHT * (1.0 - tr)


def _levels() -> dict[str, Degradation]:
    levels = [Degradation("none")]
    levels += [Degradation(f"night-{g:g}", "night", gain=g, noise=0.02) for g in (0.25, 0.1, 0.05)]
    levels += [Degradation(f"fog-{t:g}", "fog", transmission=t) for t in (0.35, 0.2, 0.1)]
    levels.append(Degradation("fog+night", "fog+night", gain=0.5, noise=0.01, transmission=0.6))
    return {level.name: level for level in levels}


LEVELS: dict[str, Degradation] = _levels()


def get_level(name: str) -> Degradation:
    if name not in LEVELS:
        raise FusionProxyError(f"unknown degradation level {name!r} (known: {', '.join(LEVELS)})")
    return LEVELS[name]


def parse_levels(text: str) -> list[Degradation]:
    """Comma-separated level names; `all` for every level."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(LEVELS.values())
    return [get_level(name) for name in names]


def degrade_image(vis: np.ndarray, level: Degradation | str, seed: int) -> np.ndarray:
    """Degrade one visible image (H x W x 3, or H x W, uint8 or float in [0, 1]); returns uint8 of that shape.

    The read noise comes from `seed`, so the same image, level and seed always give the same frame.
    """
    level = get_level(level) if isinstance(level, str) else level
    array = np.asarray(vis)
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    tensor = torch.from_numpy(array.astype(np.float32) / scale)
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    out = level.apply(tensor, torch.Generator().manual_seed(int(seed)))
    out = out[0] if array.ndim == 2 else out.permute(1, 2, 0)
    return np.round(out.numpy() * 255.0).astype(np.uint8)


@dataclass(frozen=True)
class DegradationRange:
    """Training-time draws (beyond the paper, in the spirit of Eq. 14): a random kind and severity per item.

    With probability `probability` an item is degraded; its kind is uniform over `kinds`; the night gain is
    log-uniform in [gain_min, gain_max] with read noise uniform in [0, noise_max]; the fog's mean transmission is
    uniform in [transmission_min, transmission_max]. `probability: 0` turns the injection off.
    """

    probability: float = 0.0
    kinds: tuple[str, ...] = ("night", "fog", "fog+night")
    gain_min: float = 0.03
    gain_max: float = 0.5
    noise_max: float = 0.03
    transmission_min: float = 0.08
    transmission_max: float = 0.6

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        bad = [kind for kind in self.kinds if kind not in KINDS]
        if bad or not self.kinds:
            raise FusionProxyError(f"degradation.kinds: {bad or 'none given'} not of {', '.join(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise FusionProxyError(f"degradation.probability must be in [0, 1], got {self.probability}")

    def sample(self, generator: torch.Generator) -> Degradation:
        """One item's degradation, drawn from `generator` (the same draws whatever else the item does)."""
        u = torch.rand(5, generator=generator, dtype=torch.float64).tolist()
        if u[0] >= self.probability:
            return LEVELS["none"]
        kind = self.kinds[min(int(u[1] * len(self.kinds)), len(self.kinds) - 1)]
        gain = math.exp(math.log(self.gain_min) + u[2] * (math.log(self.gain_max) - math.log(self.gain_min)))
        noise = u[3] * self.noise_max
        transmission = self.transmission_min + u[4] * (self.transmission_max - self.transmission_min)
        if kind == "night":
            return Degradation("sampled", kind, gain=gain, noise=noise)
        if kind == "fog":
            return Degradation("sampled", kind, transmission=transmission)
        if kind == "fog+night":
            return Degradation("sampled", kind, gain=min(gain * 4.0, 1.0), noise=noise, transmission=transmission)
        return LEVELS["none"]

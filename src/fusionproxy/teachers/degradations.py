"""Image degradations for the masked-diffusion teacher's self-supervised views (after Mask-DiFuser).

Each degradation maps a 3 x H x W image in [0, 1] to a degraded copy in [0, 1], drawing its strength from the
passed generator, so that a view's degraded patches look like a worse sensor seeing the same scene: the network
learns to prefer clean content over blurred, noisy, badly exposed, speckled or structurally scrambled content.
"""

from __future__ import annotations

import math
from typing import Callable

import kornia
import torch

Degradation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def gaussian_blur(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Defocus: a Gaussian blur with sigma in [1, 3] pixels."""
    sigma = _uniform(generator, 1.0, 3.0)
    size = 2 * math.ceil(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(image[None], (size, size), (sigma, sigma), border_type="replicate")[0]


def gaussian_noise(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sensor noise: additive white Gaussian noise with standard deviation in [0.05, 0.2]."""
    sigma = _uniform(generator, 0.05, 0.2)
    return (image + sigma * torch.randn(image.shape, generator=generator)).clamp(0.0, 1.0)


def gamma_change(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Under- or over-exposure: a gamma in [0.3, 0.6] or [1.7, 3.0] (never close to the identity)."""
    dark = bool(torch.rand((), generator=generator) < 0.5)
    gamma = _uniform(generator, 1.7, 3.0) if dark else _uniform(generator, 0.3, 0.6)
    return image.clamp_min(1e-6) ** gamma


def speckle_snow(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative speckle (std in [0.1, 0.3]) plus sparse bright snow flakes (density in [1%, 5%])."""
    sigma = _uniform(generator, 0.1, 0.3)
    speckled = image * (1.0 + sigma * torch.randn(image.shape[-2:], generator=generator))
    density = _uniform(generator, 0.01, 0.05)
    flakes = (torch.rand(image.shape[-2:], generator=generator) < density).float()
    # A slight blur turns single-pixel flakes into soft blobs like falling snow.
    flakes = kornia.filters.gaussian_blur2d(flakes[None, None], (3, 3), (0.7, 0.7))[0] * 2.0
    return torch.maximum(speckled, flakes.clamp(0.0, 1.0)).clamp(0.0, 1.0)


def phase_scramble(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Keep the amplitude spectrum, perturb the phase: the patch keeps its energy but loses its structure.

    The phase of the FFT of real white noise is Hermitian-antisymmetric, so adding a multiple of it keeps the
    inverse transform real; the same perturbation is used for all channels so colours stay coherent.
    """
    strength = _uniform(generator, 0.4, 1.0)
    noise_phase = torch.angle(torch.fft.fft2(torch.randn(image.shape[-2:], generator=generator)))
    spectrum = torch.fft.fft2(image)
    scrambled = torch.polar(spectrum.abs(), torch.angle(spectrum) + strength * noise_phase)
    return torch.fft.ifft2(scrambled).real.clamp(0.0, 1.0)


DEGRADATIONS: dict[str, Degradation] = {
    "blur": gaussian_blur,
    "noise": gaussian_noise,
    "gamma": gamma_change,
    "speckle_snow": speckle_snow,
    "phase_scramble": phase_scramble,
}


def random_degradation(image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, str]:
    """Apply one degradation chosen uniformly at random; returns the degraded image and its name."""
    names = list(DEGRADATIONS)
    name = names[int(torch.randint(len(names), (), generator=generator))]
    return DEGRADATIONS[name](image, generator), name

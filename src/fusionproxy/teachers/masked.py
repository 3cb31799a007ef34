"""The masked-diffusion fusion teacher, after Mask-DiFuser (Tang, Li, Ma, TPAMI 2025; FusionProxy Sec. 3.2).

A conditional DDPM: the UNet sees the noisy image concatenated with two condition images (A, B) and predicts
the noise. It is trained on natural images to restore the clean image from two complementary masked views
(`masking.make_views`); at fusion time A is the infrared image (repeated to 3 channels) and B the visible
image, and samples are drawn with stochastic DDIM (eta = 1), so different seeds give different fusions.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from .denoiser import Denoiser, NoiseSchedule, UNetConfig, build_unet
from .pretrained import PretrainedTeacher, initial_noise, with_progress
from .registry import register_teacher


@register_teacher
class MaskedDiffusionTeacher(PretrainedTeacher):
    name = "masked"

    def __init__(self, denoiser: Denoiser, steps: int = 10, eta: float = 1.0, schedule: NoiseSchedule | None = None):
        super().__init__()
        if denoiser.unet.config.in_channels != 9 * denoiser.patch_size**2:
            raise ValueError("the masked teacher's UNet takes the noisy image and two views: 9 channels")
        self.denoiser = denoiser
        self.steps, self.eta = steps, eta
        self.schedule = schedule or NoiseSchedule()

    @classmethod
    def build(
        cls,
        unet: UNetConfig | dict[str, Any] | None = None,
        steps: int = 10,
        eta: float = 1.0,
        schedule: NoiseSchedule | dict[str, Any] | None = None,
    ) -> "MaskedDiffusionTeacher":
        """A fresh (untrained) teacher from an architecture and sampling settings."""
        unet = unet if isinstance(unet, UNetConfig) else UNetConfig.from_dict(unet or {})
        schedule = schedule if isinstance(schedule, NoiseSchedule) else NoiseSchedule(**(schedule or {}))
        denoiser = Denoiser(build_unet(unet, 9, 3), unet.patch_size, unet.output, schedule)
        return cls(denoiser, steps, eta, schedule)

    def config_dict(self) -> dict[str, Any]:
        return {
            "network": self.denoiser.describe(),
            "steps": self.steps,
            "eta": self.eta,
            "schedule": asdict(self.schedule),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "MaskedDiffusionTeacher":
        schedule = NoiseSchedule(**config["schedule"])
        return cls(Denoiser.rebuild(config["network"], schedule), config["steps"], config["eta"], schedule)

    @property
    def multiple(self) -> int:
        return self.denoiser.multiple

    def forward(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, view_a: torch.Tensor, view_b: torch.Tensor
    ) -> torch.Tensor:
        """Predicted noise for x_t given the two views (all images in [-1, 1])."""
        return self.denoiser(torch.cat([noisy, view_a, view_b], dim=1), timesteps)

    def _sample(
        self, ir: torch.Tensor, vis: torch.Tensor, generators: list[torch.Generator], progress: bool
    ) -> torch.Tensor:
        n = len(generators)
        view_a = (ir * 2 - 1).expand(n, 3, -1, -1)
        view_b = (vis * 2 - 1).expand(n, -1, -1, -1)
        scheduler = self.schedule.ddim(self.steps, clip_sample=True)
        x = initial_noise(generators, tuple(vis.shape[1:]), vis.device)
        for t in with_progress(scheduler.timesteps, progress, "masked teacher"):
            eps = self(x, t.to(x.device).expand(n), view_a, view_b)
            x = scheduler.step(eps, t, x, eta=self.eta, generator=generators).prev_sample
        return (x + 1) / 2

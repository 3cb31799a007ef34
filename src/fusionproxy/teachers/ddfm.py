"""The DDFM teacher (Zhao et al., ICCV 2023; FusionProxy Sec. 3.2): an unconditional diffusion prior whose
clean-image estimate is pulled towards the fusion likelihood by one EM step at every DDIM step.

Per step: the prior predicts the noise, giving x0; x0's luminance is rectified by `ddfm_em.em_step` (state
carried across steps); the noise is recomputed from the rectified x0, and the deterministic DDIM update
(eta = 0) follows, so the ensemble's diversity comes from the initial noise. The prior works on luminance
(1 channel) or RGB (3 channels, rectified in YCbCr); the visible image's chroma is put back at the end.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import kornia
import torch

from ..errors import FusionProxyError
from .ddfm_em import EMState, em_step
from .denoiser import Denoiser, NoiseSchedule, UNetConfig, build_unet
from .pretrained import PretrainedTeacher, initial_noise, with_progress
from .registry import register_teacher


@register_teacher
class DDFMTeacher(PretrainedTeacher):
    name = "ddfm"

    def __init__(
        self,
        prior: Denoiser,
        steps: int = 10,
        lam: float = 0.5,
        rho: float = 0.001,
        schedule: NoiseSchedule | None = None,
        stretch: bool = False,
    ) -> None:
        super().__init__()
        channels = prior.unet.config.in_channels // prior.patch_size**2
        if channels not in (1, 3) or prior.unet.config.out_channels != prior.unet.config.in_channels:
            raise ValueError("the DDFM prior must map 1 (luminance) or 3 (RGB) channels to as many")
        self.prior = prior
        self.channels = channels
        self.steps, self.lam, self.rho, self.stretch = steps, lam, rho, stretch
        self.schedule = schedule or NoiseSchedule()

    @classmethod
    def build(
        cls,
        unet: UNetConfig | dict[str, Any] | None = None,
        channels: int = 1,
        steps: int = 10,
        lam: float = 0.5,
        rho: float = 0.001,
        schedule: NoiseSchedule | dict[str, Any] | None = None,
        stretch: bool = False,
    ) -> "DDFMTeacher":
        """A teacher with a fresh (untrained) prior of the given architecture."""
        unet = unet if isinstance(unet, UNetConfig) else UNetConfig.from_dict(unet or {})
        schedule = schedule if isinstance(schedule, NoiseSchedule) else NoiseSchedule(**(schedule or {}))
        prior = Denoiser(build_unet(unet, channels, channels), unet.patch_size, unet.output, schedule)
        return cls(prior, steps, lam, rho, schedule, stretch)

    @classmethod
    def from_prior(
        cls, directory: str | Path, steps: int = 10, lam: float = 0.5, rho: float = 0.001,
        schedule: NoiseSchedule | None = None, stretch: bool = False,
    ) -> "DDFMTeacher":
        """Wrap any diffusers UNet2DModel directory (1- or 3-channel, epsilon prediction) as the prior."""
        from diffusers import UNet2DModel

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FusionProxyError(f"{directory}: not a diffusers UNet2DModel directory (no config.json)")
        try:
            unet = UNet2DModel.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError, EnvironmentError) as error:
            raise FusionProxyError(f"{directory}: cannot load a UNet2DModel ({str(error).splitlines()[0]})") from None
        try:
            return cls(Denoiser(unet), steps, lam, rho, schedule, stretch)
        except ValueError as error:
            raise FusionProxyError(f"{directory}: {error}") from None

    def config_dict(self) -> dict[str, Any]:
        return {
            "prior": self.prior.describe(),
            "steps": self.steps,
            "lam": self.lam,
            "rho": self.rho,
            "stretch": self.stretch,
            "schedule": asdict(self.schedule),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DDFMTeacher":
        schedule = NoiseSchedule(**config["schedule"])
        prior = Denoiser.rebuild(config["prior"], schedule)
        return cls(prior, config["steps"], config["lam"], config["rho"], schedule, config.get("stretch", False))

    @property
    def multiple(self) -> int:
        return self.prior.multiple

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The prior's predicted noise for x_t (images in [-1, 1])."""
        return self.prior(noisy, timesteps)

    # Luminance in [-1, 1] <-> the prior's image space.
    def _luminance(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels == 1:
            return image
        return kornia.color.rgb_to_ycbcr((image + 1) / 2)[:, :1] * 2 - 1

    def _with_luminance(self, image: torch.Tensor, luminance: torch.Tensor) -> torch.Tensor:
        if self.channels == 1:
            return luminance
        ycbcr = kornia.color.rgb_to_ycbcr((image + 1) / 2)
        ycbcr = torch.cat([(luminance + 1) / 2, ycbcr[:, 1:]], dim=1)
        return kornia.color.ycbcr_to_rgb(ycbcr) * 2 - 1

    def _sample(
        self, ir: torch.Tensor, vis: torch.Tensor, generators: list[torch.Generator], progress: bool
    ) -> torch.Tensor:
        n = len(generators)
        vis_ycbcr = kornia.color.rgb_to_ycbcr(vis)
        g = (vis_ycbcr[:, :1] * 2 - 1).expand(n, -1, -1, -1)
        t_ir = (ir * 2 - 1).expand(n, -1, -1, -1)
        state = EMState.initial(g)
        scheduler = self.schedule.ddim(self.steps, clip_sample=False)
        alphas_cumprod = scheduler.alphas_cumprod.to(vis.device)
        x = initial_noise(generators, (self.channels, *vis.shape[-2:]), vis.device)
        for t in with_progress(scheduler.timesteps, progress, "DDFM teacher"):
            alpha_bar = alphas_cumprod[t]
            eps = self(x, t.to(x.device).expand(n))
            x0 = ((x - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()).clamp(-1, 1)
            rectified, state = em_step(self._luminance(x0), g, t_ir, state, self.lam, self.rho)
            x0 = self._with_luminance(x0, rectified)
            eps = (x - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        luminance = (self._luminance(x).clamp(-1, 1) + 1) / 2
        if self.stretch:
            low = luminance.amin(dim=(1, 2, 3), keepdim=True)
            high = luminance.amax(dim=(1, 2, 3), keepdim=True)
            luminance = (luminance - low) / (high - low).clamp_min(1e-6)
        fused = torch.cat([luminance, vis_ycbcr[:, 1:].expand(n, -1, -1, -1)], dim=1)
        return kornia.color.ycbcr_to_rgb(fused)

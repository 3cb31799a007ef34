"""The teachers' noise-prediction network: a diffusers UNet2DModel, optionally behind a pixel (un)shuffle.

With patch_size p > 1 the image is folded into p*p times as many channels at 1/p of the resolution before the
UNet and unfolded after it (as patch embeddings do in latent-free diffusion transformers): every pixel still
reaches the network, but its convolutions run on p*p times fewer positions, which is what makes CPU-scale
teachers sample a 256 x 256 fusion in seconds. patch_size = 1 is a plain UNet2DModel, e.g. a pretrained prior.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import nn


@dataclass
class UNetConfig:
    """Architecture of a teacher UNet built from scratch.

    block_out_channels: channels per resolution level (one 2x downsampling between levels);
    layers_per_block: ResNet blocks per level; attention: self-attention at the two coarsest levels and in
    the mid block (the papers' setting; too slow for CPU); patch_size: pixel-unshuffle factor (see module doc);
    output: how the UNet output becomes the noise prediction (see `Denoiser`).
    """

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = False
    patch_size: int = 2
    norm_num_groups: int = 8
    output: str = "noise_skip"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "UNetConfig":
        values = dict(values)
        if "block_out_channels" in values:
            values["block_out_channels"] = tuple(values["block_out_channels"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["block_out_channels"] = list(self.block_out_channels)
        return values


def build_unet(config: UNetConfig, in_channels: int, out_channels: int) -> UNet2DModel:
    """A UNet2DModel for `in_channels` -> `out_channels` image channels (before patch folding)."""
    levels = len(config.block_out_channels)
    attention_levels = {levels - 2, levels - 1} if config.attention else set()
    down = tuple("AttnDownBlock2D" if i in attention_levels else "DownBlock2D" for i in range(levels))
    up = tuple("AttnUpBlock2D" if levels - 1 - i in attention_levels else "UpBlock2D" for i in range(levels))
    fold = config.patch_size**2
    return UNet2DModel(
        in_channels=in_channels * fold,
        out_channels=out_channels * fold,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        add_attention=config.attention,
        norm_num_groups=config.norm_num_groups,
    )


OUTPUTS = ("epsilon", "noise_skip", "clean")


class Denoiser(nn.Module):
    """eps_theta(x_t, t): a UNet2DModel run on pixel-unshuffled input; `multiple` is the size it needs.

    `output` says how the UNet's output U becomes the noise prediction; all three are trained with the same
    epsilon MSE and differ only in what the network has to represent (a = sqrt(abar_t), s = sqrt(1 - abar_t)):
    "epsilon": eps = U (plain; pretrained priors); "noise_skip": eps = s x_t + U, exact at pure noise where
    eps = x_t; "clean": eps = (x_t - a U) / s, i.e. U is a clean-image estimate, so at low noise the network
    only has to reproduce image content instead of the exact noise realisation. Input channels beyond the
    noisy image (the masked teacher's views) are conditions and never enter these formulas.
    """

    def __init__(
        self, unet: UNet2DModel, patch_size: int = 1, output: str = "epsilon", schedule: "NoiseSchedule | None" = None
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"unknown denoiser output '{output}' (known: {', '.join(OUTPUTS)})")
        self.unet = unet
        self.patch_size = patch_size
        self.output = output
        if output != "epsilon":
            alphas_cumprod = (schedule or NoiseSchedule()).ddpm().alphas_cumprod
            self.register_buffer("signal_scale", alphas_cumprod.sqrt(), persistent=False)
            self.register_buffer("noise_scale", (1 - alphas_cumprod).sqrt(), persistent=False)

    @property
    def multiple(self) -> int:
        return self.patch_size * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def image_channels(self) -> int:
        return self.unet.config.out_channels // self.patch_size**2

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        folded = F.pixel_unshuffle(x, self.patch_size) if self.patch_size > 1 else x
        out = self.unet(folded, timesteps).sample
        out = F.pixel_shuffle(out, self.patch_size) if self.patch_size > 1 else out
        if self.output == "epsilon":
            return out
        noisy = x[:, : self.image_channels]
        a = self.signal_scale[timesteps].view(-1, 1, 1, 1)
        s = self.noise_scale[timesteps].view(-1, 1, 1, 1)
        return s * noisy + out if self.output == "noise_skip" else (noisy - a * out) / s

    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild the (untrained) network: the diffusers config, patch size, output."""
        unet_config = {k: v for k, v in dict(self.unet.config).items() if not k.startswith("_")}
        return {"patch_size": self.patch_size, "output": self.output, "unet": unet_config}

    @classmethod
    def rebuild(cls, description: dict[str, Any], schedule: "NoiseSchedule") -> "Denoiser":
        unet = UNet2DModel.from_config(description["unet"])
        return cls(unet, description["patch_size"], description["output"], schedule)


@dataclass
class NoiseSchedule:
    """The DDPM training schedule (Ho et al. 2020 defaults) that both sampling and training share."""

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"

    def _kwargs(self) -> dict[str, Any]:
        return asdict(self)

    def ddpm(self) -> DDPMScheduler:
        return DDPMScheduler(**self._kwargs())

    def ddim(self, steps: int, clip_sample: bool) -> DDIMScheduler:
        # "trailing" spacing starts at the last training timestep, i.e. from pure noise, even with few steps.
        scheduler = DDIMScheduler(**self._kwargs(), clip_sample=clip_sample, timestep_spacing="trailing")
        scheduler.set_timesteps(steps)
        return scheduler

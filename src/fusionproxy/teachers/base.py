"""The contract every diffusion teacher meets, so the cache can sample any of them the same way."""

from __future__ import annotations

import torch
from torch import nn


class Teacher(nn.Module):
    """A stochastic fusion model p_T(y | x) (paper Sec. 3.1-3.2).

    `sample(ir, vis, num_samples, seed)` takes one pair, `ir` 1 x 1 x H x W and `vis` 1 x 3 x H x W in
    [0, 1], any H x W, and returns num_samples x 3 x H x W RGB in [0, 1]. The same seed gives the same
    samples; different seeds give different samples. `identity()` is a stable string naming the teacher
    and a checksum of its weights, recorded in cache manifests.
    """

    name: str

    def sample(
        self, ir: torch.Tensor, vis: torch.Tensor, num_samples: int, seed: int, progress: bool = False
    ) -> torch.Tensor:
        raise NotImplementedError

    def identity(self) -> str:
        raise NotImplementedError

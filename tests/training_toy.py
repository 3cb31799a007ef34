"""A toy regression problem for the Trainer tests; also run as a script under torchrun (2 processes)."""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.utils.data import Dataset

from fusionproxy.training import TrainConfig, Trainer, item_generator


class NoisyLine(Dataset):
    """y = 3x - 1 plus noise drawn per item from item_generator, so every epoch differs but reproducibly."""

    def __init__(self, length: int = 24, seed: int = 0) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = item_generator(self.seed, self.epoch, index)
        x = torch.rand(4, generator=generator)
        return {"x": x, "y": 3 * x - 1 + 0.1 * torch.randn(4, generator=generator)}


def mse(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 4))


def train(out_dir: str, max_steps: int = 9, loss_fn=mse, lr: float = 1e-2) -> nn.Module:
    config = TrainConfig(max_steps=max_steps, batch_size=4, lr=lr, checkpoint_every=3, log_every=1, warmup_steps=2)
    return Trainer(out_dir, make_model(), NoisyLine(), loss_fn, config).train()


if __name__ == "__main__":
    model = train(sys.argv[1])
    from accelerate import PartialState

    state = PartialState()
    if state.is_main_process:  # the process count proves the ranks really trained together
        torch.save({"weights": model.state_dict(), "processes": state.num_processes}, sys.argv[2])

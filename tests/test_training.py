"""The shared Trainer: resumed runs and multi-process runs end with the same weights as a plain run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusionproxy.errors import FusionProxyError
from fusionproxy.training import TrainConfig, Trainer, item_generator

sys.path.insert(0, str(Path(__file__).parent))
import training_toy  # noqa: E402


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_item_generator_depends_on_seed_epoch_and_index() -> None:
    draw = lambda *key: torch.rand(3, generator=item_generator(*key))  # noqa: E731
    assert torch.equal(draw(0, 1, 2), draw(0, 1, 2))
    assert not torch.equal(draw(0, 1, 2), draw(0, 1, 3))
    assert not torch.equal(draw(0, 1, 2), draw(0, 2, 2))
    assert not torch.equal(draw(0, 1, 2), draw(1, 1, 2))


def test_training_lowers_the_loss_and_logs(tmp_path: Path) -> None:
    training_toy.train(str(tmp_path), max_steps=30, lr=1e-1)
    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    first, last = (sum(float(r["mse"]) for r in part) / 5 for part in (rows[:5], rows[-5:]))
    assert last < 0.5 * first
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000027", "step-0000030"]


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    reference = training_toy.train(str(tmp_path / "plain"))

    calls = {"n": 0}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 8:  # dies during step 8; the last checkpoint is step 6
            raise RuntimeError("simulated crash")
        return training_toy.mse(model, batch)

    with pytest.raises(RuntimeError, match="simulated crash"):
        training_toy.train(str(tmp_path / "resumed"), loss_fn=crashing_loss)
    resumed = training_toy.train(str(tmp_path / "resumed"))
    assert _same_weights(reference, resumed)
    with (tmp_path / "resumed" / "log.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == list(range(1, 10))


def test_finished_run_resumes_to_its_end(tmp_path: Path) -> None:
    first = training_toy.train(str(tmp_path))
    again = training_toy.train(str(tmp_path))
    assert _same_weights(first, again)


def test_changed_settings_refuse_to_resume(tmp_path: Path) -> None:
    training_toy.train(str(tmp_path), max_steps=3)
    with pytest.raises(FusionProxyError, match=r"different settings \(train\.max_steps: 3 -> 5\)"):
        training_toy.train(str(tmp_path), max_steps=5)


def test_setting_differences_name_each_changed_key() -> None:
    from fusionproxy.training import setting_differences

    before = {"train": {"lr": 0.1, "seed": 0}, "run": {"student_config": {"width": 4}}}
    now = {"train": {"lr": 0.2, "seed": 0}, "run": {"student_config": {"width": 4, "new_field": False}}}
    assert setting_differences(before, now) == ["train.lr: 0.1 -> 0.2", "run.student_config.new_field: \"absent\" -> false"]
    assert setting_differences(before, before) == []
    many = {f"k{i}": i for i in range(9)}
    assert len(setting_differences(many, {k: v + 1 for k, v in many.items()})) == 5


def test_trainable_loss_parameters_are_optimised(tmp_path: Path) -> None:
    class ScaledMSE(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, model, batch):
            loss = ((self.scale * model(batch["x"]) - batch["y"]) ** 2).mean()
            return loss, {}

    loss_fn = ScaledMSE()
    config = TrainConfig(max_steps=5, batch_size=4, lr=1e-2, checkpoint_every=5)
    Trainer(tmp_path, training_toy.make_model(), training_toy.NoisyLine(), loss_fn, config).train()
    assert loss_fn.scale.item() != 0.5


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path: Path) -> None:
    reference = training_toy.train(str(tmp_path / "single"))
    script = Path(__file__).parent / "training_toy.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
               str(script), str(tmp_path / "double"), str(tmp_path / "double.pt")]
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=300)
    saved = torch.load(tmp_path / "double.pt")
    assert saved["processes"] == 2
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(saved["weights"][name], value, rtol=1e-5, atol=1e-6)

"""One training loop for every trainer in the package (teachers, distillation, DTPF), built on Accelerate.

The same script runs on one CPU, several GPUs or several nodes (`accelerate launch` / `torchrun`). Runs are
exactly resumable and independent of the process count because all data randomness is drawn inside the
dataset's `__getitem__` from `item_generator(seed, epoch, index)`, batches are global (Accelerate splits each
one across processes), and checkpoints carry the weights, optimizer, scheduler and RNG states.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .config_files import build_config
from .errors import FusionProxyError

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]
ValidateFn = Callable[[nn.Module, int, Path], dict[str, float]]

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "train_config.json"


@dataclass
class TrainConfig:
    """Optimisation settings shared by every trainer (AdamW, cosine schedule with linear warm-up)."""

    max_steps: int
    batch_size: int  # global: split across processes, so results do not depend on their number
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    checkpoint_every: int = 200
    log_every: int = 10
    validate_every: int | None = None  # steps; None = at the end of every epoch
    seed: int = 0
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"
    num_workers: int = 0
    keep_checkpoints: int = 2

    config_noun: ClassVar[str] = "training option"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        return build_config(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def setting_differences(before: Any, now: Any, path: str = "", limit: int = 5) -> list[str]:
    """Up to `limit` differing settings of two JSON records, as 'a.b.c: before -> now' (a missing key: absent)."""
    if isinstance(before, dict) and isinstance(now, dict):
        found: list[str] = []
        for key in [*before, *(k for k in now if k not in before)]:
            where = f"{path}.{key}" if path else str(key)
            found += setting_differences(before.get(key, "absent"), now.get(key, "absent"), where, limit)
        return found[:limit]
    return [] if before == now else [f"{path}: {json.dumps(before)} -> {json.dumps(now)}"]


def with_defaults(record: Any, defaults: Any) -> Any:
    """`record` with the keys it lacks taken from `defaults` (recursively through nested dicts)."""
    if not (isinstance(record, dict) and isinstance(defaults, dict)):
        return record
    return {**defaults, **{key: with_defaults(value, defaults.get(key)) for key, value in record.items()}}


def complete_checkpoints(out_dir: str | Path) -> list[Path]:
    """The run's checkpoint folders whose saving finished (they hold the state file), oldest first."""
    checkpoints = sorted((Path(out_dir) / CHECKPOINT_DIR).glob("step-*"))
    return [c for c in checkpoints if (c / STATE_FILE).exists()]


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The RNG for one dataset item in one epoch: the same item gets the same draws however it is scheduled."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


class EpochShuffleSampler(Sampler[int]):
    """A permutation of the dataset that depends only on (seed, epoch)."""

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


class _StopRequest:
    """Turns the first Ctrl-C / SIGTERM into a request to checkpoint and stop at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second signal stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Optimises `model` (and any trainable parameters of `loss_fn`) on `dataset` with `loss_fn`.

    `loss_fn(model, batch) -> (loss, logs)`; `validate(model, step, out_dir) -> metrics` runs on the main process
    every `validate_every` steps (or every epoch). Outputs under `out_dir`: `log.csv`, `validation.csv`,
    `checkpoints/step-XXXXXXX/` and `train_config.json`. Running the same command again resumes from the
    latest checkpoint; a finished run resumes straight to its end.
    """

    def __init__(
        self,
        out_dir: str | Path,
        model: nn.Module,
        dataset: Dataset,
        loss_fn: LossFn,
        config: TrainConfig,
        validate: ValidateFn | None = None,
        collate_fn: Callable | None = None,
        run_info: dict[str, Any] | None = None,
        run_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.model, self.dataset, self.loss_fn = model, dataset, loss_fn
        self.config, self.validate, self.collate_fn = config, validate, collate_fn
        # run_info (e.g. student name, cache id) must also match for a resume to be allowed; run_defaults
        # (same shape) supplies the settings an older run's record lacks, at the values they had before.
        self.run_info, self.run_defaults = run_info or {}, run_defaults or {}

    # -- set-up -----------------------------------------------------------------------------------------
    def _check_or_write_config(self, accelerator: Accelerator) -> None:
        record = {"train": self.config.to_dict(), "run": self.run_info}
        path = self.out_dir / CONFIG_FILE
        if path.exists():
            previous = with_defaults(json.loads(path.read_text()), {"run": self.run_defaults})
            current = json.loads(json.dumps(record))
            if previous != current:
                raise FusionProxyError(
                    f"{path}: this output directory holds a run with different settings "
                    f"({'; '.join(setting_differences(previous, current))}); "
                    "use a new --out directory or delete it"
                )
        elif accelerator.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2))
        accelerator.wait_for_everyone()

    def _latest_checkpoint(self) -> Path | None:
        complete = complete_checkpoints(self.out_dir)
        return complete[-1] if complete else None

    def _save(self, accelerator: Accelerator, step: int) -> None:
        directory = self.out_dir / CHECKPOINT_DIR / f"step-{step:07d}"
        accelerator.save_state(str(directory))
        if accelerator.is_main_process:
            # Written last: a checkpoint without it was interrupted while saving and is ignored.
            (directory / STATE_FILE).write_text(json.dumps({"step": step}))
            older = sorted((self.out_dir / CHECKPOINT_DIR).glob("step-*"))[: -self.config.keep_checkpoints]
            for stale in older:
                shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()

    def _trainable_loss_parameters(self) -> list[nn.Parameter]:
        if isinstance(self.loss_fn, nn.Module):
            return [p for p in self.loss_fn.parameters() if p.requires_grad]
        return []

    # -- logging ----------------------------------------------------------------------------------------
    def _append_csv(self, name: str, row: dict[str, Any], resume_step: int | None = None) -> None:
        path = self.out_dir / name
        rows: list[dict[str, Any]] = []
        if path.exists():
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        if resume_step is not None:  # drop rows logged after the checkpoint we resumed from
            rows = [r for r in rows if int(r["step"]) <= resume_step]
        if row:
            rows.append(row)
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def _run_validation(self, accelerator: Accelerator, step: int) -> None:
        if self.validate is None:
            return
        if accelerator.is_main_process:
            model = accelerator.unwrap_model(self.model)
            was_training = model.training
            model.eval()
            with torch.no_grad():
                metrics = self.validate(model, step, self.out_dir)
            model.train(was_training)
            self._append_csv("validation.csv", {"step": step, **metrics})
        accelerator.wait_for_everyone()

    # -- the loop ---------------------------------------------------------------------------------------
    def train(self) -> nn.Module:
        config = self.config
        # Accelerate sets up multi-process CPU training (gloo) only when told to use the CPU; without it, ranks
        # launched by torchrun on a machine without CUDA each silently train alone.
        distributed_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        accelerator = Accelerator(
            cpu=distributed_cpu,
            mixed_precision=config.mixed_precision,
            step_scheduler_with_optimizer=False,
            dataloader_config=DataLoaderConfiguration(split_batches=True),
        )
        if config.batch_size % accelerator.num_processes:
            raise FusionProxyError(
                f"batch size {config.batch_size} does not split evenly over {accelerator.num_processes} processes"
            )
        if len(self.dataset) < config.batch_size:
            raise FusionProxyError(f"the dataset has {len(self.dataset)} items, fewer than one batch")
        self._check_or_write_config(accelerator)
        set_seed(config.seed)

        sampler = EpochShuffleSampler(len(self.dataset), config.seed)
        loader = DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=sampler,
            drop_last=True,  # equal batches: the same global batches whatever the process count
            num_workers=config.num_workers,
            collate_fn=self.collate_fn,
        )
        loss_parameters = self._trainable_loss_parameters()
        optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad] + loss_parameters,
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        from diffusers.optimization import get_cosine_schedule_with_warmup

        scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.max_steps)
        self.model, optimizer, loader, scheduler = accelerator.prepare(self.model, optimizer, loader, scheduler)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.to(accelerator.device)
            if loss_parameters:
                accelerator.register_for_checkpointing(self.loss_fn)

        step = 0
        latest = self._latest_checkpoint()
        if latest is not None:
            accelerator.load_state(str(latest))
            step = json.loads((latest / STATE_FILE).read_text())["step"]
        if accelerator.is_main_process:
            self._append_csv("log.csv", {}, resume_step=step)
            if self.validate is not None:
                self._append_csv("validation.csv", {}, resume_step=step)

        steps_per_epoch = len(loader)
        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.description}"),
            disable=not accelerator.is_main_process,
        )
        self.model.train()
        start = time.perf_counter()
        with progress, _StopRequest() as stop:
            task = progress.add_task("", total=config.max_steps, completed=step)
            while step < config.max_steps:
                epoch, offset = divmod(step, steps_per_epoch)
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(epoch)
                epoch_loader = accelerator.skip_first_batches(loader, offset) if offset else loader
                # Accelerate's loader re-seeds the sampler with its own iteration counter on every pass; a
                # resumed run must start that counter at the current epoch, not at 0.
                epoch_loader.set_epoch(epoch)
                for batch in epoch_loader:
                    loss, logs = self.loss_fn(self.model, batch)
                    accelerator.backward(loss)
                    for p in loss_parameters:  # not wrapped by DDP, so average their gradients here
                        if p.grad is not None:
                            p.grad = accelerator.reduce(p.grad, reduction="mean")
                    if config.grad_clip:
                        accelerator.clip_grad_norm_(list(self.model.parameters()) + loss_parameters, config.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1

                    logs = {"loss": float(loss.detach()), **logs}
                    progress.update(task, advance=1, description=" ".join(f"{k}={v:.4g}" for k, v in logs.items()))
                    if accelerator.is_main_process and (step % config.log_every == 0 or step == config.max_steps):
                        row = {"step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0], **logs}
                        self._append_csv("log.csv", {**row, "seconds": round(time.perf_counter() - start, 2)})
                    epoch_end = step % steps_per_epoch == 0
                    if step % config.checkpoint_every == 0 or step == config.max_steps or stop.requested:
                        self._save(accelerator, step)
                    if (
                        (config.validate_every and step % config.validate_every == 0)
                        or (not config.validate_every and epoch_end)
                        or step == config.max_steps
                    ):
                        self._run_validation(accelerator, step)
                    if stop.requested:
                        raise FusionProxyError(
                            f"interrupted at step {step}; checkpoint saved, run the same command to resume"
                        )
                    if step >= config.max_steps:
                        break
        return accelerator.unwrap_model(self.model)

"""DTPF training pairs: random crops with flips and 90-degree rotations, each with its event index.

All randomness is drawn in `__getitem__` from `training.item_generator(seed, epoch, index)`, so resumed and
multi-process runs see identical items.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import track
from torch.utils.data import Dataset

from ..errors import FusionProxyError
from ..io import find_dataset_pairs, ir_to_tensor, read_ir, read_vis, vis_to_tensor
from ..training import item_generator
from .text import EVENT_TYPES, estimate_event, read_labels

Pair = tuple[str, Path, Path]


def training_pairs(data: str | Path) -> list[Pair]:
    """The (stem, ir_path, vis_path) pairs of a dataset folder (`ir/` + `vi/` or similar)."""
    try:
        pairs = find_dataset_pairs(data).pairs
    except FileNotFoundError as error:
        raise FusionProxyError(str(error)) from None
    if not pairs:
        raise FusionProxyError(f"{data}: no IR/VIS pairs found (expected ir/<stem>.* and vi/<stem>.*)")
    return pairs


def read_pair(ir_path: Path, vis_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(ir 1 x H x W, vis 3 x H x W) in [0, 1]; a size mismatch is an error naming both files."""
    ir, vis = read_ir(ir_path), read_vis(vis_path)
    if ir.shape[:2] != vis.shape[:2]:
        raise FusionProxyError(
            f"{ir_path}: IR is {ir.shape[0]}x{ir.shape[1]} but {vis_path} is {vis.shape[0]}x{vis.shape[1]}; "
            "DTPF trains on registered pairs of equal size"
        )
    return ir_to_tensor(ir)[0], vis_to_tensor(vis)[0]


def resolve_events(pairs: list[Pair], labels: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Each pair's event type and where it came from ("labels" or "estimated"): from the labels file when it
    has the stem, otherwise from the degradation estimator (`text.estimate_event`)."""
    known = read_labels(labels) if labels is not None else {}
    events, sources = [], []
    for stem, ir_path, vis_path in track(pairs, description="event labels", transient=True):
        if stem in known:
            events.append(known[stem])
            sources.append("labels")
        else:
            events.append(estimate_event(read_ir(ir_path), read_vis(vis_path)))
            sources.append("estimated")
    return events, sources


def write_events(path: Path, pairs: list[Pair], events: list[str], sources: list[str]) -> None:
    """A `stem,event,source` CSV, readable back by `text.read_labels`."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stem", "event", "source"])
        writer.writerows((stem, event, source) for (stem, _, _), event, source in zip(pairs, events, sources))


class DTPFPairDataset(Dataset):
    """Items {"ir": 1 x crop x crop, "vis": 3 x crop x crop, "event": index into EVENT_TYPES}.

    Images smaller than the crop are replicate-padded first; the same crop, flips and rotation apply to both
    modalities.
    """

    def __init__(self, pairs: list[Pair], events: list[str], crop: int, seed: int = 0) -> None:
        if len(pairs) != len(events):
            raise ValueError("one event per pair is needed")
        self.pairs, self.crop, self.seed, self.epoch = pairs, crop, seed, 0
        self.events = [EVENT_TYPES.index(event) for event in events]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        _, ir_path, vis_path = self.pairs[index]
        image = torch.cat(read_pair(ir_path, vis_path))  # 4 x H x W: IR then VIS, cropped together
        height, width = image.shape[-2:]
        pad_h, pad_w = max(self.crop - height, 0), max(self.crop - width, 0)
        if pad_h or pad_w:
            image = F.pad(image[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
        generator = item_generator(self.seed, self.epoch, index)
        top = int(torch.randint(image.shape[1] - self.crop + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[2] - self.crop + 1, (1,), generator=generator))
        flip_h, flip_v = torch.rand(2, generator=generator) < 0.5
        rotations = int(torch.randint(4, (1,), generator=generator))
        image = image[:, top : top + self.crop, left : left + self.crop]
        if flip_h:
            image = image.flip(-1)
        if flip_v:
            image = image.flip(-2)
        image = torch.rot90(image, rotations, dims=(1, 2)).contiguous()
        return {"ir": image[:1], "vis": image[1:], "event": torch.tensor(self.events[index])}

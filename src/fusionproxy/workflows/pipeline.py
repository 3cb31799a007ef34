"""The whole chain, from scratch to a benchmarked default student, as one resumable command.

    fusionproxy pipeline --config cpu|gpu|smoke|FILE.yaml --out DIR [--from STAGE] [--until STAGE] [--dry-run]

Stages, in order, each one or more steps: a library call that does what one of the package's own
`fusionproxy ...` commands does (see `pipeline_plan.plan` and `steps`):

- `weights`  fetch the offline pretrained panel (skipped for a random-init panel),
- `prior`    train DDFM's diffusion prior; its output directory is the DDFM teacher (paper Sec. 3.2),
- `masked`   train the masked-diffusion teacher,
- `cache`    sample both teachers N times per training item, run the panel, store Eq. 3-6 and 9 statistics,
- `distill`  distil the student (Eq. 7-12, misalignment injection of Eq. 14, uncertainty head),
- `evaluate` score student, each teacher's N-sample ensemble mean and the classical baselines on the test sets,
- `bench`    the student's latency per size and backend.

Every command resumes by itself when rerun; on top of that `DIR/pipeline_state.json` records each finished stage
with its exact commands and wall time, so a rerun skips finished stages, and a stage whose commands changed (an
edited config) runs again together with every stage after it. Paths in the YAML that are relative resolve
against the current directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import FusionProxyError
from ..io import IMAGE_SUFFIXES
from .pipeline_config import PipelineConfig
from .pipeline_plan import STAGES, Layout, Stage, data_folders, plan
from .steps import Runner, format_command
from .subsets import link_file, link_pairs, resolved_path

STATE_FILE = "pipeline_state.json"
STATE_VERSION = 1
# The layout of an evaluation's fused-output cache (fusionproxy.evaluate.storage), shared between variants.
EVAL_OUTPUTS = "fused"


def link_subsets(config: PipelineConfig, layout: Layout) -> None:
    """Link the first `data.limit` natural images and training pairs, and the first `data.test_limit` pairs of
    each test set, under OUT/data (idempotent)."""
    data = config.data
    natural, train, tests = data_folders(config, layout)
    if data.limit is not None:
        natural_dir = resolved_path(data.natural)
        if not natural_dir.is_dir():
            raise FusionProxyError(f"{natural_dir}: natural image folder not found (data.natural in {config.source})")
        for image in sorted(p for p in natural_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: data.limit]:
            link_file(image, natural / image.name)
        link_pairs(data.train, train, data.limit, config.source)
    if data.test_limit is not None:
        for name, target in tests.items():
            link_pairs(data.test[name], target, data.test_limit, config.source)


def share_evaluation_outputs(config: PipelineConfig, layout: Layout) -> None:
    """Hard-link the first evaluation's fused outputs into the later variants' folders, so a stretched
    re-scoring does not sample the teachers again (the evaluation scores cached outputs as fresh ones)."""
    first = layout.evaluation(config.evaluate.stretch[0]) / EVAL_OUTPUTS
    for stretch in config.evaluate.stretch[1:]:
        target = layout.evaluation(stretch) / EVAL_OUTPUTS
        if first.is_dir() and target != first:
            shutil.copytree(first, target, copy_function=_hard_link, dirs_exist_ok=True)


def _hard_link(source: str, target: str) -> None:
    if not os.path.exists(target):
        os.link(source, target)


# ----- running -------------------------------------------------------------------------------------------
class PipelineState:
    """`pipeline_state.json`: per stage its status, commands and accumulated wall time; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"version": STATE_VERSION, "stages": {}}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise FusionProxyError(f"{path}: corrupt pipeline state ({error}); delete it to start over") from None
            if not isinstance(self.data, dict) or not isinstance(self.data.get("stages"), dict):
                raise FusionProxyError(f"{path}: not a pipeline state file; delete it to start over")

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].setdefault(name, {"status": "pending", "seconds": 0.0, "attempts": 0})

    def finished(self, stage: Stage) -> bool:
        entry = self.data["stages"].get(stage.name, {})
        return entry.get("status") == "finished" and entry.get("commands") == stage.commands

    def forget(self, name: str) -> None:
        if name in self.data["stages"]:
            self.data["stages"][name]["status"] = "pending"

    def record(self, stage: Stage, status: str, seconds: float) -> None:
        entry = self.stage(stage.name)
        entry.update(status=status, commands=stage.commands, seconds=round(entry["seconds"] + seconds, 2),
                     attempts=entry["attempts"] + 1, last_seconds=round(seconds, 2),
                     updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))  # fmt: skip
        self.save()

    def total_seconds(self) -> float:
        return round(sum(entry.get("seconds", 0.0) for entry in self.data["stages"].values()), 2)

    def save(self) -> None:
        self.data["total_seconds"] = self.total_seconds()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data, indent=2) + "\n")
        temporary.replace(self.path)


@dataclass
class StageReport:
    name: str
    status: str  # finished (in this run), skipped (finished before), not run (outside --from/--until)
    seconds: float  # this invocation
    total_seconds: float  # every invocation together


def _selected(start: str | None, until: str | None) -> list[str]:
    for value, option in ((start, "--from"), (until, "--until")):
        if value is not None and value not in STAGES:
            raise FusionProxyError(f"{option} {value}: unknown stage (stages: {', '.join(STAGES)})")
    first = STAGES.index(start) if start else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    if first > last:
        raise FusionProxyError(f"--from {start} comes after --until {until} (order: {', '.join(STAGES)})")
    return list(STAGES[first : last + 1])


def run_pipeline(
    config: PipelineConfig,
    out: str | Path,
    start: str | None = None,
    until: str | None = None,
    runner: Runner | None = None,
    log: Callable[[str], None] = print,
) -> list[StageReport]:
    """Run the selected stages in order, skipping the finished ones; returns a report per stage.

    `start` (--from) runs that stage and every later one again even if they finished; the stages before it
    must have finished. A stage whose commands differ from the recorded ones (an edited config) reruns, and so
    do all the stages after it. A failing stage is recorded with its time and the error propagates.
    `runner` runs each step from its command, out of this process (a fresh interpreter per step frees memory
    between stages and survives a crashing one); None runs each step's library call here.
    """
    out = Path(out).resolve()
    layout = Layout(out)
    stages = plan(config, out)
    selected = _selected(start, until)
    state = PipelineState(out / STATE_FILE)
    if start is not None:
        missing = [s.name for s in stages[: STAGES.index(start)] if s.commands and not state.finished(s)]
        if missing:
            raise FusionProxyError(f"{out / STATE_FILE}: stage(s) {', '.join(missing)} before --from {start} have not "
                                   "finished with this config; run them first (drop --from)")  # fmt: skip
        for stage in stages[STAGES.index(start) :]:
            state.forget(stage.name)
    state.data["config"] = config.source
    state.save()
    link_subsets(config, layout)

    reports, invalidated = [], False
    for stage in stages:
        entry = state.stage(stage.name)
        if stage.name not in selected:
            reports.append(StageReport(stage.name, "not run", 0.0, entry["seconds"]))
            continue
        if state.finished(stage) and not invalidated:
            log(f"[{stage.name}] finished earlier ({entry['seconds']:.1f} s); skipped")
            reports.append(StageReport(stage.name, "skipped", 0.0, entry["seconds"]))
            continue
        if entry.get("commands") not in (None, stage.commands):
            log(f"[{stage.name}] its commands changed since the last run; running it and every later stage again")
            invalidated = True
        began = time.perf_counter()
        try:
            for step in stage.steps:
                log(f"[{stage.name}] {format_command(step.argv)}")
                if runner is not None:
                    runner(step.argv)
                else:
                    step.call()
                if stage.name == "evaluate":
                    share_evaluation_outputs(config, layout)
        except BaseException:
            state.record(stage, "failed", time.perf_counter() - began)
            raise
        seconds = round(time.perf_counter() - began, 2)
        state.record(stage, "finished", seconds)
        log(f"[{stage.name}] finished in {seconds:.1f} s")
        reports.append(StageReport(stage.name, "finished", seconds, state.stage(stage.name)["seconds"]))
    return reports

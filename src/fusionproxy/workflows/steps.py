"""The steps a workflow chains, each a library call together with the `fusionproxy` command that does the same.

A `Step` carries both: `call()` runs it in this process through the library; `argv` is what the user would type,
shown by dry runs, recorded in state files (so an edited config is noticed) and handed to an out-of-process
`Runner` (a fresh interpreter per step, or `accelerate launch` for a multi-process stage), which the caller,
such as the CLI, supplies. Every constructor below takes each setting once and builds both from it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import FusionProxyError

Command = list[str]  # argv of `fusionproxy`, without the program name
Runner = Callable[[Command], None]


@dataclass(frozen=True)
class Step:
    argv: Command
    call: Callable[[], object]


def format_command(command: Command) -> str:
    return shlex.join(["fusionproxy", *command])


def _sets(overrides: Sequence[str]) -> list[str]:
    return [part for item in overrides for part in ("--set", item)]


def weights_step(names: Sequence[str]) -> Step:
    """`fusionproxy weights fetch NAME...`."""

    def fetch() -> None:
        from ..foundation.fetch import fetch_weights

        for name in names:
            fetch_weights(name)

    return Step(["weights", "fetch", *names], fetch)


def teacher_step(
    kind: str, images: Path, out: Path, config: str, val_pairs: Path, threads: int, overrides: Sequence[str]
) -> Step:
    """`fusionproxy teacher train KIND`."""

    def run() -> None:
        from ..teachers.training import train_teacher_from_folders

        train_teacher_from_folders(kind, images, out, config, overrides, val_pairs, threads)

    argv = ["teacher", "train", kind, "--images", str(images), "--out", str(out), "--config", config,
            "--val-pairs", str(val_pairs), "--threads", str(threads), *_sets(overrides)]  # fmt: skip
    return Step(argv, run)


def cache_step(
    data: Path, teachers: Sequence[Path], out: Path, panel: str, samples: int, crop_size: int, crops_per_image: int,
    grid: int, seed: int, device: str, random_init: bool,
) -> Step:
    """`fusionproxy cache build`."""

    def run() -> None:
        from ..cache import CacheConfig, build_cache_from_folders

        config = CacheConfig(samples, crop_size, crops_per_image, grid, seed)
        build_cache_from_folders(data, teachers, out, panel, {}, random_init, config, device=device)

    argv = ["cache", "build", "--data", str(data), *(a for t in teachers for a in ("--teacher", str(t))),
            "--out", str(out), "--panel", panel, "--samples-per-teacher", str(samples), "--crop-size", str(crop_size),
            "--crops-per-image", str(crops_per_image), "--grid", str(grid), "--seed", str(seed), "--device", device,
            *(["--random-init"] if random_init else [])]  # fmt: skip
    return Step(argv, run)


def distill_step(
    cache: Path, out: Path, student: str, config: str, overrides: Sequence[str], allow_random_panel: bool
) -> Step:
    """`fusionproxy distill`."""

    def run() -> None:
        from ..distill import distill_from_cache, load_config

        distill_from_cache(cache, out, student, load_config(config, overrides), allow_random_panel=allow_random_panel)

    argv = ["distill", "--cache", str(cache), "--out", str(out), "--student", student, "--config", config,
            *_sets(overrides), *(["--allow-random-panel"] if allow_random_panel else [])]  # fmt: skip
    return Step(argv, run)


def distill_head_step(model: Path, cache: Path, out: Path, steps: int, hidden: int) -> Step:
    """`fusionproxy distill-head`."""

    def run() -> None:
        from ..uncertainty_fit import HeadFitConfig, refit_model

        refit_model(model, cache, out, HeadFitConfig(steps=steps, hidden=hidden))

    argv = ["distill-head", "--model", str(model), "--cache", str(cache), "--out", str(out),
            "--steps", str(steps), "--hidden", str(hidden)]  # fmt: skip
    return Step(argv, run)


def evaluate_step(
    datasets: dict[str, Path], methods: Sequence[str], out: Path, conventions: str, stretch: bool, baselines: bool,
    seed: int, grid: str | None,
) -> Step:
    """`fusionproxy evaluate`; unscorable inputs fail the step, as they fail the command."""

    def run() -> None:
        from ..evaluate import evaluate, parse_method, with_baselines

        parsed = [parse_method(text) for text in methods]
        stems = None if grid is None else [] if grid == "none" else [s for s in grid.split(",") if s]
        result = evaluate([f"{name}={path}" for name, path in datasets.items()],
                          with_baselines(parsed) if baselines else parsed, out,
                          conventions=[c for c in conventions.split(",") if c], stretch=stretch, seed=seed,
                          grid=stems)  # fmt: skip
        if result.failures:
            raise FusionProxyError(f"{len(result.failures)} input(s) could not be scored; see {out / 'summary.md'}")

    argv = ["evaluate", *(a for name, path in datasets.items() for a in ("--dataset", f"{name}={path}")),
            *(a for m in methods for a in ("--method", m)), "--out", str(out), "--convention", conventions,
            "--stretch" if stretch else "--no-stretch", "--baselines" if baselines else "--no-baselines",
            "--seed", str(seed), *(["--grid", grid] if grid is not None else [])]  # fmt: skip
    return Step(argv, run)


def bench_step(
    model: Path, sizes: str, backends: str, runs: int, warmup: int, json_path: Path, threads: int | None,
    teachers: Sequence[Path], teacher_runs: int,
) -> Step:
    """`fusionproxy bench MODEL --json PATH` (with teachers: their sampling time, for the speed-up)."""

    def run() -> None:
        from .. import bench
        from ..api import FusionProxy

        size_list, backend_list = bench.parse_sizes(sizes), bench.parse_backends(backends)
        label = str(model)
        results = bench.benchmark(FusionProxy.from_pretrained(model).student, label, size_list, backend_list,
                                  runs=runs, warmup=warmup, threads=threads)  # fmt: skip
        for directory in teachers:
            results += bench.bench_teacher(directory, size_list, teacher_runs, threads, None, 0)
        bench.write_json(json_path, results, label, runs, warmup)

    argv = ["bench", str(model), "--sizes", sizes, "--backends", backends, "--runs", str(runs),
            "--warmup", str(warmup), "--json", str(json_path), *(["--threads", str(threads)] if threads else []),
            *([a for d in teachers for a in ("--teacher", str(d))] + ["--teacher-runs", str(teacher_runs)]
              if teachers else [])]  # fmt: skip
    return Step(argv, run)

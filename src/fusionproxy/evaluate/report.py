"""Per-image rows -> means, ranks and the Markdown summary."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from ..metrics.thermal import NAME as TTC
from .storage import read_number

SSIM_COLUMN = "ssim_vs_aligned"


@dataclass
class Group:
    """Mean of every numeric column over the images of one (method, dataset, perturbation); `counts`: how many
    images each mean is over (NaN cells, e.g. TTC of frames without thermal targets, are left out)."""

    count: int = 0
    means: dict[str, float] = field(default_factory=dict)
    median_seconds: float = math.nan
    counts: dict[str, int] = field(default_factory=dict)


def metric_column(convention: str, name: str) -> str:
    return f"{convention}:{name}"


def summarize(rows: list[dict[str, str]], columns: list[str]) -> dict[tuple[str, str, str], Group]:
    """Group rows by (method, dataset, perturbation); NaN cells are left out of means and medians."""
    values: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        bucket = values[(row["method"], row["dataset"], row["perturbation"])]
        for column in [*columns, "seconds"]:
            number = read_number(row[column])
            if not math.isnan(number):
                bucket[column].append(number)
        bucket["_count"].append(1.0)
    groups = {}
    for key, bucket in values.items():
        seconds = bucket.pop("seconds", [])
        groups[key] = Group(
            count=len(bucket.pop("_count")),
            means={column: statistics.fmean(items) for column, items in bucket.items()},
            median_seconds=statistics.median(seconds) if seconds else math.nan,
            counts={column: len(items) for column, items in bucket.items()},
        )
    return groups


def ranks(values: dict[str, float], higher_is_better: bool) -> dict[str, int]:
    """Competition ranks (1 = best; ties share the better rank); NaN values get no rank."""
    valid = {name: value for name, value in values.items() if not math.isnan(value)}
    sign = -1.0 if higher_is_better else 1.0
    return {
        name: 1 + sum(sign * other < sign * value for other in valid.values()) for name, value in valid.items()
    }


def _number(value: float) -> str:
    """Four significant digits, trailing zeros kept so columns line up (1000 and above: integers)."""
    if math.isnan(value):
        return "–"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:#.4g}"


def _speed(seconds: float) -> str:
    return "n/a (precomputed)" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def means_table(
    groups: dict[tuple[str, str, str], Group],
    methods: list[str],
    dataset: str,
    perturbation: str,
    convention: str,
    metric_names: list[str],
    higher_is_better: dict[str, bool],
) -> str:
    """Markdown: one row per method, the mean of each metric with its rank in brackets, and the speed; below it,
    how many frames the TTC means are over (frames without thermal targets have none)."""
    present = [m for m in methods if (m, dataset, perturbation) in groups]
    header = [f"{name} {'↑' if higher_is_better[name] else '↓'}" for name in metric_names]
    lines = [
        "| method | images | " + " | ".join(header) + " | median time / image |",
        "|---|---:|" + "---:|" * len(metric_names) + "---:|",
    ]
    column_ranks = {}
    for name in metric_names:
        column = metric_column(convention, name)
        means = {m: groups[(m, dataset, perturbation)].means.get(column, math.nan) for m in present}
        column_ranks[name] = ranks(means, higher_is_better[name])
    for method in present:
        group = groups[(method, dataset, perturbation)]
        cells = []
        for name in metric_names:
            value = group.means.get(metric_column(convention, name), math.nan)
            rank = column_ranks[name].get(method)
            cells.append(_number(value) + (f" ({rank})" if rank is not None else ""))
        lines.append(f"| {method} | {group.count} | " + " | ".join(cells) + f" | {_speed(group.median_seconds)} |")
    if TTC in metric_names and present:
        counted = _frames_counted(groups, present, dataset, perturbation, metric_column(convention, TTC))
        lines += ["", f"{TTC} over {counted} (frames without thermal targets left out)."]
    return "\n".join(lines)


def _frames_counted(
    groups: dict[tuple[str, str, str], Group], methods: list[str], dataset: str, perturbation: str, column: str
) -> str:
    """'23/25 frames', or one such figure per set of methods where their counts differ."""
    counts = {}
    for method in methods:
        group = groups[(method, dataset, perturbation)]
        counts[method] = f"{group.counts.get(column, 0)}/{group.count} frames"
    distinct = list(dict.fromkeys(counts.values()))
    if len(distinct) == 1:
        return distinct[0]
    return ", ".join(f"{c} ({', '.join(m for m in methods if counts[m] == c)})" for c in distinct)


def misalignment_table(
    groups: dict[tuple[str, str, str], Group],
    methods: list[str],
    dataset: str,
    perturbations: list[str],
    convention: str,
    metric_names: list[str],
) -> str:
    """Markdown (Table 6 layout): one row per method and perturbation level, SSIM vs aligned output first."""
    lines = [
        "| method | perturbation | SSIM vs aligned | " + " | ".join(metric_names) + " |",
        "|---|---|---:|" + "---:|" * len(metric_names),
    ]
    for method in methods:
        for level in perturbations:
            group = groups.get((method, dataset, level))
            if group is None:
                continue
            cells = [_number(group.means.get(metric_column(convention, n), math.nan)) for n in metric_names]
            ssim = _number(group.means.get(SSIM_COLUMN, math.nan))
            lines.append(f"| {method} | {level} | {ssim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""An ablation block's results: the JSON summary and the Markdown table of `fusionproxy ablate`."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the rows and the config are the ablation's own; only their fields are read here
    from .ablation import AblationConfig, PlannedRow

BLOCK_NAMES = ("table4a", "table4b", "table4c", "table7")
# CDDFuse's eight published metrics (the `cddfuse` convention of fusionproxy.metrics), the table's columns.
TABLE_METRICS = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")
CONVENTION = "cddfuse"


def summarize_block(
    config: AblationConfig,
    block: str,
    planned: list[PlannedRow],
    every_row: list[PlannedRow],
    rows: list[dict[str, str]],
    test_name: str,
) -> dict[str, Any]:
    """Per row: its settings, run (and the rows of any block sharing it), parameter count, training time and
    the evaluation's means."""
    from ..api import FusionProxy
    from ..evaluate.report import metric_column, summarize

    groups = summarize(rows, [metric_column(CONVENTION, name) for name in TABLE_METRICS])
    entries = []
    for p in planned:
        model = FusionProxy.from_pretrained(p.run_dir)
        group = groups[(p.row.id, test_name, "aligned")]
        shared = [q.row.id for q in every_row if q.run_dir == p.run_dir and q.row.id != p.row.id]
        entries.append({
            "id": p.row.id, "variant": p.row.variant, "student": p.student, "teachers": list(p.teachers),
            "samples_per_teacher": p.samples, "row_overrides": [o for o in p.overrides if o not in config.distill.set],
            "cache": str(p.cache_dir), "run": str(p.run_dir), "same_run_as": shared,
            "params": sum(t.numel() for t in model.parameters()),
            "train_seconds_last_invocation": model.metadata.get("training", {}).get("seconds_this_invocation"),
            "images": group.count,
            "metrics": {name: group.means.get(metric_column(CONVENTION, name), math.nan) for name in TABLE_METRICS},
            "ms_per_frame": group.median_seconds * 1000.0,
        })  # fmt: skip
    return {
        "block": block, "config": config.source, "test_set": test_name, "convention": CONVENTION,
        "stretch": config.evaluate.stretch,
        "scale": {"train": config.data.train, "train_limit": config.data.train_limit, "test": config.data.test,
                  "test_limit": config.data.test_limit, "teachers": config.teachers, "cache": asdict(config.cache),
                  "distill_config": config.distill.config, "distill_set": list(config.distill.set),
                  "threads": config.threads},
        "rows": entries,
    }  # fmt: skip


TITLES = {
    "table4a": "Table 4, block A: teacher ensemble",
    "table4b": "Table 4, block B: dual-signal supervision",
    "table4c": "Table 4, block C: student backbone",
    "table7": "Table 7: routing temperature tau",
}


def block_markdown(summary: dict[str, Any]) -> str:
    """The block's Markdown table (paper row ids; rows sharing a run say so)."""
    scale = summary["scale"]
    stretch = ", min-max stretched (CDDFuse)" if summary["stretch"] else ""
    lines = [
        f"# {TITLES[summary['block']]}", "",
        f"Config `{summary['config']}`: train {scale['train']} (first {scale['train_limit'] or 'all'} pairs), "
        f"crop {scale['cache']['crop_size']}, grid {scale['cache']['grid']}, panel `{scale['cache']['panel']}`; "
        f"distill `{scale['distill_config']}` with {' '.join(scale['distill_set']) or 'no overrides'}. "
        f"Means over the first {scale['test_limit'] or 'all'} pairs of {summary['test_set']}, "
        f"{summary['convention']} convention{stretch}. ms / frame: median fusion time per test image "
        f"(native size, {scale['threads'] or 'default'} thread(s)).", "",
        "| row | variant | teachers x N | params | " + " | ".join(TABLE_METRICS)
        + " | ms / frame | train s (last invocation) |",
        "|---|---|---|---:|" + "---:|" * len(TABLE_METRICS) + "---:|---:|",
    ]  # fmt: skip
    for entry in summary["rows"]:
        shared = entry["same_run_as"]
        variant = entry["variant"] + (f" (same run as {', '.join(shared)})" if shared else "")
        cells = [f"{entry['metrics'][name]:.4g}" for name in TABLE_METRICS]
        seconds = entry["train_seconds_last_invocation"]
        teachers = f"{'+'.join(entry['teachers'])} x {entry['samples_per_teacher']}"
        lines.append(f"| ({entry['id']}) | {variant} | {teachers} | {entry['params'] / 1e6:.3g} M | "
                     + " | ".join(cells)
                     + f" | {entry['ms_per_frame']:.1f} | {seconds if seconds is not None else '–'} |")  # fmt: skip
    return "\n".join(lines) + "\n"

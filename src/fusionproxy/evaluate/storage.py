"""What an evaluation keeps on disk so it can resume: the per-image CSV, the fused-output cache, the settings.

- `results.csv`: one row per (method, dataset, stem, perturbation), appended and flushed as each finishes.
- `fused/<method>/<dataset>/<perturbation>/<stem>.png`: every computed output, 8-bit, with its fusion time in a
  PNG text chunk; scores are always computed from these files, so fresh and cached runs score identically.
- `run.json`: the settings that give the CSV its meaning; a rerun with different ones is refused.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from ..errors import FusionProxyError

KEY_COLUMNS = ("method", "dataset", "stem", "perturbation")
SECONDS_KEY = "fusionproxy:seconds"

RowKey = tuple[str, str, str, str]


class ResultStore:
    """The per-image CSV: rows already there are `finished`; new rows are appended and flushed one by one."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns
        self.rows: list[dict[str, str]] = []
        if path.is_file():
            self._drop_partial_last_line()
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames != columns:
                    raise FusionProxyError(
                        f"{path}: written with other columns ({', '.join(reader.fieldnames or [])}); "
                        "use the same --convention/--perturb settings, --rescore, or another --out"
                    )
                self.rows = [row for row in reader if None not in row.values() and None not in row]
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(columns)
        self.finished: set[RowKey] = {self.key(row) for row in self.rows}

    def _drop_partial_last_line(self) -> None:
        """A run killed mid-write leaves a cut-off last row; remove it (its row is simply recomputed)."""
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            with self.path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    @staticmethod
    def key(row: dict[str, Any]) -> RowKey:
        return tuple(str(row[column]) for column in KEY_COLUMNS)  # type: ignore[return-value]

    def append(self, row: dict[str, Any]) -> None:
        text = {column: _format(row.get(column)) for column in self.columns}
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, self.columns).writerow(text)
            handle.flush()
        self.rows.append(text)
        self.finished.add(self.key(text))


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.7g}"
    return str(value)


def read_number(text: str) -> float:
    """A CSV cell as a float; empty cells (unknown timings of precomputed outputs) are NaN."""
    return float(text) if text else math.nan


def save_fused(path: Path, image: np.ndarray, seconds: float) -> None:
    """Write an 8-bit RGB output with its fusion time; written to a temporary file first so a kill leaves no
    half-written PNG that a rerun would take for a cached result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text(SECONDS_KEY, repr(float(seconds)))
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(image).save(partial, format="PNG", pnginfo=info)
    partial.replace(path)


def load_fused(path: Path) -> tuple[np.ndarray, float] | None:
    """(uint8 image, seconds) of a cached output, or None if it was never computed."""
    if not path.is_file():
        return None
    with Image.open(path) as image:
        seconds = read_number(image.text.get(SECONDS_KEY, ""))
        return np.asarray(image.convert("RGB")), seconds


def check_settings(path: Path, settings: dict[str, Any], results_exist: bool) -> None:
    """Refuse to mix scores made under other settings, or cached outputs of a method now meaning another."""
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous.get("seed") != settings["seed"]:
            raise FusionProxyError(
                f"{path}: the cached outputs there were made with seed {previous.get('seed')}, now "
                f"{settings['seed']}; use the same --seed or another --out"
            )
        for table in ("methods", "datasets"):
            for name, spec in settings[table].items():
                before = previous.get(table, {}).get(name)
                if before is not None and before != spec:
                    raise FusionProxyError(
                        f"{path}: {table[:-1]} '{name}' was '{before}' in this output folder, now '{spec}'; "
                        "give it another name or use another --out"
                    )
        if results_exist:
            for item in ("conventions", "no_reference", "stretch", "perturbations"):
                if previous.get(item) != settings[item]:
                    raise FusionProxyError(
                        f"{path}: the scores there were made with {item}={previous.get(item)}, now "
                        f"{settings[item]}; use --rescore to re-score the cached outputs, or another --out"
                    )
        for table in ("methods", "datasets"):
            settings[table] = {**previous.get(table, {}), **settings[table]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")

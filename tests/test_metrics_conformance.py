"""Every published value of shared/metric-conformance is reproduced within 0.1 % relative.

The CSVs hold the VIFB MATLAB toolkit's values (5 significant digits) and the CDDFuse evaluator's values
(6 significant digits) for 6 scenes x 8 methods. The smallest magnitude stored is 0.021197 (an SCD), so a
pure relative bound is meaningful for every row; the absolute floor of 1e-6 only guards an exactly-zero
published value (it is below 0.1 % of every stored value and above their rounding, 5e-7 at worst).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from fusionproxy.io import read_raw
from fusionproxy.metrics import METRIC_NAMES, compute_metrics

pytestmark = pytest.mark.data  # ../shared/metric-conformance

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "metric-conformance" / "vifb"
RELATIVE = 1e-3
ABSOLUTE_FLOOR = 1e-6
SCENES = ["carLight", "fight", "kettle", "manWalking", "snow", "walkingnight"]


def _published(convention: str) -> dict[tuple[str, str], dict[str, float]]:
    values: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    with open(CONFORMANCE / f"{convention}_values.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            values[(row["scene"], row["method"])][row["metric"]] = float(row["value"])
    return values


@pytest.mark.parametrize("convention", ["vifb", "cddfuse"])
def test_csv_covers_all_metrics(convention: str) -> None:
    published = _published(convention)
    assert {scene for scene, _ in published} == set(SCENES)
    assert len(published) == 48
    for metrics in published.values():
        # every metric of the convention except TTC, this project's own addition
        assert sorted(metrics) == sorted(n for n in METRIC_NAMES[convention] if n != "TTC")


@pytest.mark.slow
@pytest.mark.parametrize("scene", SCENES)
@pytest.mark.parametrize("convention", ["vifb", "cddfuse"])
def test_published_values_reproduced(convention: str, scene: str) -> None:
    ir = read_raw(CONFORMANCE / "ir" / f"{scene}.jpg")
    vis = read_raw(CONFORMANCE / "vi" / f"{scene}.jpg")
    rows = {method: values for (s, method), values in _published(convention).items() if s == scene}
    assert len(rows) == 8
    failures = []
    for method, expected in sorted(rows.items()):
        fused = read_raw(CONFORMANCE / "fused" / f"{scene}_{method}.jpg")
        got = compute_metrics(fused, ir, vis, convention)
        assert list(got) == METRIC_NAMES[convention]
        for name, value in expected.items():
            if abs(got[name] - value) > max(RELATIVE * abs(value), ABSOLUTE_FLOOR):
                failures.append(f"{method} {name}: got {got[name]:.6g}, published {value:.6g}")
    assert not failures, "\n".join(failures)

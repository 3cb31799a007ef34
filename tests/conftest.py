"""Shared fixtures: the real datasets beside the checkout, the tiny bundled pair, and small synthetic pairs.

Tiers (markers registered in pyproject.toml; CONTRIBUTING.md): `pytest -q` runs only unmarked tests, which
must pass without ../shared and without a network. A test that requests `datasets_dir` or
`roadscene_test_pair` must be marked `data`, or collection stops with an error naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

# The suite's networks are tiny: a second OpenMP thread only adds synchronisation, which is very slow when the
# two cores are busy. Set before torch loads so CLI subprocesses started by tests inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
TINY = Path(__file__).resolve().parent / "data" / "tiny"  # one 96 x 72 RoadScene pair: tiny/{ir,vi}/FLIR_04484.png
SHARED_FIXTURES = {"datasets_dir", "roadscene_test_pair"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything, so the default run reports a mistake too
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("data") is None]
    if unmarked:
        raise pytest.UsageError("these tests read ../shared but are not marked `data`:\n  " + "\n  ".join(unmarked))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    assert DATASETS.is_dir(), f"expected the shared datasets at {DATASETS}"
    return DATASETS


@pytest.fixture(scope="session")
def roadscene_test_pair(datasets_dir: Path) -> tuple[Path, Path]:
    """(ir_path, vis_path) of one real RoadScene test pair."""
    from fusionproxy.io import find_dataset_pairs

    stem, ir_path, vis_path = find_dataset_pairs(datasets_dir / "roadscene" / "test").pairs[0]
    return ir_path, vis_path


@pytest.fixture(scope="session")
def tiny_pair() -> tuple[Path, Path]:
    """(ir_path, vis_path) of the bundled 96 x 72 RoadScene crop (tests/data/README.md): no ../shared needed."""
    return TINY / "ir" / "FLIR_04484.png", TINY / "vi" / "FLIR_04484.png"


@pytest.fixture
def synthetic_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random pair: ir 1 x 1 x 37 x 53, vis 1 x 3 x 37 x 53 (odd sizes on purpose)."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 37, 53, generator=generator), torch.rand(1, 3, 37, 53, generator=generator)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    torch.manual_seed(0)
    np.random.seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Each workflow step's library call does what its `fusionproxy` command does: both are run against recording
stand-ins of the library functions, and the calls they make must agree (arguments bound to the signature,
defaults filled in, progress and logging callbacks left out).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from fusionproxy.cli import app
from fusionproxy.workflows.pipeline_config import load_config
from fusionproxy.workflows.pipeline_plan import plan

REPO = Path(__file__).resolve().parents[1]
CALLBACKS = {"log", "console", "on_step", "progress"}
# (module holding the name the CLI and the step both look up at call time, name, what the stand-in returns)
LIBRARY = [
    ("fusionproxy.teachers.training", "train_teacher_from_folders",
     type("Trained", (), {"name": "stand-in", "identity": lambda self: "stand-in"})()),
    ("fusionproxy.cache", "build_cache_from_folders", {"items": [], "statistics": {}}),
    ("fusionproxy.distill", "distill_from_cache", None),
    ("fusionproxy.uncertainty_fit", "refit_model",
     {"held_out_spearman": None, "final_loss": 0.0, "held_out_items": 0}),
    ("fusionproxy.evaluate", "evaluate", type("Result", (), {"rows": [], "failures": []})()),
    ("fusionproxy.foundation.fetch", "fetch_weights", None),
]


def _plain(value: Any) -> Any:
    """Comparable form: paths as strings, sequences as lists, configs and methods by their contents."""
    if hasattr(value, "spec"):
        return value.spec
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    import importlib

    recorded: list[tuple[str, dict[str, Any]]] = []
    for module_name, name, result in LIBRARY:
        module = importlib.import_module(module_name)
        signature = inspect.signature(getattr(module, name))

        def stand_in(*args, _name=name, _signature=signature, _result=result, **kwargs):
            bound = _signature.bind(*args, **kwargs)
            bound.apply_defaults()
            recorded.append((_name, {k: _plain(v) for k, v in bound.arguments.items() if k not in CALLBACKS}))
            return _result

        monkeypatch.setattr(module, name, stand_in)
    monkeypatch.chdir(REPO)  # the bundled configs' data paths are relative to the checkout
    return recorded


@pytest.mark.parametrize("name", ["cpu", "smoke"])
def test_each_step_calls_the_library_as_its_command_does(name: str, tmp_path: Path, calls) -> None:
    for directory in ("student", "teachers/ddfm", "teachers/masked"):  # the evaluation's methods must exist
        (tmp_path / directory).mkdir(parents=True)
    steps = [step for stage in plan(load_config(name), tmp_path) if stage.name != "bench" for step in stage.steps]
    assert {step.argv[0] for step in steps} >= {"teacher", "cache", "distill", "evaluate"}
    for step in steps:
        calls.clear()
        step.call()
        from_library = list(calls)
        calls.clear()
        app(args=step.argv, prog_name="fusionproxy", standalone_mode=False)
        assert from_library and from_library == calls, step.argv

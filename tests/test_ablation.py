"""`fusionproxy ablate` (Table 4 blocks A-C, Table 7) end to end with the `smoke` config: tiny teachers made here,
synthetic pairs, a random-init panel. Checks that each row trains with its intended settings, that rows sharing the
default setup train once, that a rerun retrains nothing, and that the tables list every row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fusionproxy.workflows import ablation
from fusionproxy.cli import app
from fusionproxy.errors import FusionProxyError
from fusionproxy.io import write_image

REPO = Path(__file__).resolve().parents[1]
ALL_ROWS = {name: [row.id for row in ablation.block_rows(name)] for name in ablation.BLOCK_NAMES}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """`--set` overrides pointing the smoke config at synthetic pairs and two tiny untrained teachers."""
    from fusionproxy.teachers import create_teacher

    root = tmp_path_factory.mktemp("ablation-inputs")
    rng = np.random.default_rng(0)
    for split, count, shape in (("train", 3, (40, 40)), ("test", 1, (36, 44))):
        for i in range(count):
            write_image(root / split / "ir" / f"p{i}.png", rng.integers(0, 256, shape, np.uint8))
            write_image(root / split / "vi" / f"p{i}.png", rng.integers(0, 256, (*shape, 3), np.uint8))
    for name in ("ddfm", "masked"):
        torch.manual_seed(0)
        teacher = create_teacher(name, unet={"block_out_channels": [8, 16], "norm_num_groups": 4}, steps=2)
        teacher.save_pretrained(root / name)
    return [f"data.train={root / 'train'}", f"data.test={root / 'test'}",
            f"teachers.ddfm={root / 'ddfm'}", f"teachers.masked={root / 'masked'}"]  # fmt: skip


def _ablate(out: Path, overrides: list[str], *extra: str):
    sets = [a for o in overrides for a in ("--set", o)]
    args = ["ablate", "all", "--config", "smoke", "--out", str(out), *sets, *extra]
    return CliRunner().invoke(app, args)


def _loss(run_dir: Path) -> dict:
    return json.loads((run_dir / "train_config.json").read_text())["run"]["distill"]["loss"]


def test_bundled_configs_plan_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the bundled configs' paths are relative to the checkout
    config = ablation.load_config("cpu")
    assert config.data.train_limit == 24 and config.data.test_limit == 10 and config.cache.crop_size == 128
    assert config.teachers == {"ddfm": "models/teachers/ddfm-cpu", "masked": "models/teachers/masked-cpu"}
    assert all((REPO / path / "config.json").is_file() for path in config.teachers.values())
    plans = {name: {p.row.id: p for p in ablation.plan_block(config, name, tmp_path)} for name in ablation.BLOCK_NAMES}
    a = plans["table4a"]
    assert (a["a"].teachers, a["a"].samples, a["b"].teachers, a["b"].samples) == (("masked",), 1, ("masked",), 4)
    assert a["c"].teachers == ("ddfm", "masked") and a["c"].samples == 4
    assert len({p.cache_dir for p in a.values()}) == 3
    # (c), (h), (l) and tau = 1 are the default setup: one run. tau = inf is (e)'s uniform routing.
    default = {a["c"].run_dir, plans["table4b"]["h"].run_dir, plans["table4c"]["l"].run_dir,
               plans["table7"]["tau1"].run_dir}  # fmt: skip
    assert len(default) == 1
    assert plans["table7"]["tauinf"].run_dir == plans["table4b"]["e"].run_dir
    assert [p.student for p in plans["table4c"].values()] == ["ultralight", "mobile_unet", "convnext_unet"]
    every_run = {p.run_dir for rows in plans.values() for p in rows.values()}
    assert len(every_run) == 17 - 3 - 1  # 17 rows: (c), (h), (l), tau1 share a run; tauinf is (e)
    with pytest.raises(FusionProxyError, match="unknown block"):
        ablation.block_rows("table5")
    with pytest.raises(FusionProxyError, match="unknown option"):
        ablation.load_config("smoke", ["cache.crop=3"])


@pytest.mark.slow
def test_ablate_all_smoke_trains_each_setup_once_and_resumes(
    inputs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fusionproxy.distill as distill_module

    monkeypatch.chdir(REPO)
    trained: list[Path] = []
    real = distill_module.distill_from_cache

    def counting(cache_dir, out_dir, *args, **kwargs):
        trained.append(Path(out_dir))
        return real(cache_dir, out_dir, *args, **kwargs)

    monkeypatch.setattr(distill_module, "distill_from_cache", counting)
    out = tmp_path / "ablation"
    dry = _ablate(out, inputs, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert not (out / "runs").exists() and all(f"({row})" in dry.output for rows in ALL_ROWS.values() for row in rows)

    result = _ablate(out, inputs)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert len(trained) == len(set(trained)) == 13  # 17 rows, 13 distinct setups, each trained once
    assert len(list((out / "caches").iterdir())) == 3  # masked N=1, masked N=2, both N=2 (smoke's N is 2)

    summaries = {name: json.loads((out / f"{name}.json").read_text()) for name in ALL_ROWS}
    runs = {e["id"]: Path(e["run"]) for s in summaries.values() for e in s["rows"]}
    # (d): the VGG backbone alone, uniform routing; the others use the whole panel.
    assert _loss(runs["d"])["backbones"] == ["vgg16-hed"] and _loss(runs["d"])["routing"] == "uniform"
    assert _loss(runs["e"])["backbones"] is None and _loss(runs["e"])["routing"] == "uniform"
    assert _loss(runs["f"])["routing"] == "learned" and _loss(runs["g"])["pixel_weighting"] == "uniform"
    default = _loss(runs["h"])
    assert (default["routing"], default["pixel_weighting"], default["tau"]) == ("adaptive", "uncertainty", 1.0)
    # Table 7: the finite-tau runs differ from the default in tau only.
    for tau in (0.1, 0.5, 2.0, 5.0):
        loss = _loss(runs[f"tau{tau:g}"])
        assert loss["tau"] == tau and {k: v for k, v in loss.items() if k != "tau"} == {
            k: v for k, v in default.items() if k != "tau"}  # fmt: skip
    assert runs["c"] == runs["h"] == runs["l"] == runs["tau1"] and runs["tauinf"] == runs["e"]
    student = json.loads((runs["i"] / "train_config.json").read_text())["run"]["student"]
    assert student == "ultralight"
    cache = json.loads((Path(summaries["table4a"]["rows"][0]["cache"]) / "manifest.json").read_text())
    assert [t["name"] for t in cache["teachers"]] == ["masked"] and cache["config"]["samples_per_teacher"] == 1
    # (a): one sample has no spread; its variance is 0 (uniform Eq. 7 / Eq. 8 weights), not NaN, so it trains.
    from fusionproxy.api import FusionProxy
    from fusionproxy.cache import CacheDataset

    single = CacheDataset(summaries["table4a"]["rows"][0]["cache"])
    assert float(torch.as_tensor(single[0]["var"]).abs().max()) == 0.0
    assert all(np.isfinite(v) for v in single.mean_var.values())
    assert all(torch.isfinite(t).all() for t in FusionProxy.from_pretrained(runs["a"]).state_dict().values())

    for name, rows in ALL_ROWS.items():
        table = (out / f"{name}.md").read_text()
        assert all(f"| ({row}) |" in table for row in rows), table
        entries = summaries[name]["rows"]
        assert [e["id"] for e in entries] == rows
        assert all(np.isfinite(list(e["metrics"].values())).all() and e["params"] > 0 and e["images"] == 1
                   for e in entries)  # fmt: skip
    assert summaries["table4a"]["rows"][2]["same_run_as"] == ["h", "l", "tau1"]
    assert "(same run as c, l, tau1)" in (out / "table4b.md").read_text()
    assert summaries["table7"]["rows"][-1]["same_run_as"] == ["e"]

    trained.clear()  # rerun: every stage is finished, nothing is trained again and the tables are the same
    before = {name: (out / f"{name}.md").read_text() for name in ALL_ROWS}
    again = _ablate(out, inputs)
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert trained == [] and "finished earlier; skipped" in again.output
    assert {name: (out / f"{name}.md").read_text() for name in ALL_ROWS} == before

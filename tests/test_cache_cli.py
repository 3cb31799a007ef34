"""`fusionproxy cache build | info | verify` end to end with both real (tiny, untrained) teachers."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from fusionproxy.cli import app
from fusionproxy.io import write_image


@pytest.mark.slow
def test_cli_build_info_verify_with_real_teachers(tmp_path):
    import numpy as np

    from fusionproxy.cache import CacheDataset
    from fusionproxy.teachers import create_teacher

    rng = np.random.default_rng(1)
    for i in range(2):
        write_image(tmp_path / "data" / "ir" / f"a{i}.png", rng.integers(0, 256, (36, 40), np.uint8))
        write_image(tmp_path / "data" / "vi" / f"a{i}.png", rng.integers(0, 256, (36, 40, 3), np.uint8))
    write_image(tmp_path / "data" / "ir" / "lonely.png", np.zeros((8, 8), np.uint8))  # reported, not fatal
    teachers = []
    for name in ("ddfm", "masked"):
        torch.manual_seed(0)
        create_teacher(name, unet={"block_out_channels": [8, 16], "norm_num_groups": 4}, steps=2).save_pretrained(
            tmp_path / name
        )
        teachers += ["--teacher", str(tmp_path / name)]
    out = tmp_path / "cache"
    runner = CliRunner()
    args = ["cache", "build", "--data", str(tmp_path / "data"), *teachers, "-o", str(out), "--panel",
            "efficientnet-lite0", "--random-init", "--samples-per-teacher", "2", "--crop-size", "32", "--grid", "4",
            "--device", "cpu"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "lonely.png" in result.output and "2 items, finalised" in result.output
    ds = CacheDataset(out)
    assert len(ds) == 2 and ds.panel_is_random
    assert [t["name"] for t in ds.manifest["teachers"]] == ["ddfm", "masked"]
    assert ds[1]["var"].shape == (32, 32) and float(ds[1]["var"].max()) > 0  # samples differ
    info = runner.invoke(app, ["cache", "info", str(out), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["panel_is_random"] is True
    assert runner.invoke(app, ["cache", "verify", str(out)]).exit_code == 0
    (out / "items" / "0000001.json").unlink()
    verify = runner.invoke(app, ["cache", "verify", str(out)])
    assert verify.exit_code == 1 and "missing: 1 [1]" in verify.output
    rerun = runner.invoke(app, args)  # resumes the one missing item
    assert rerun.exit_code == 0 and runner.invoke(app, ["cache", "verify", str(out)]).exit_code == 0

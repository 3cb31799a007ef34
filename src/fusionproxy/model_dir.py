"""The one model-directory format, shared by students (`FusionProxy`), diffusion teachers and DTPF models.

A directory holds `model.safetensors` (the network's state dict) and `config.json`:

    {"fusionproxy_model": "<registry>:<entry>", "format_version": 1, "config": {...}, ...}

The header names the registry (student, teacher, dtpf) and the entry in it (e.g. convnext_unet); a model may
add keys of its own (a student's `metadata`). Directories written before the header existed name the entry
under a registry-specific key (`student`, `teacher`, `model`); they still load, and new saves write that key
too, so earlier versions of the package read new directories. Every problem is one line naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from .errors import FusionProxyError, MissingWeightsError

HEADER = "fusionproxy_model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

M = TypeVar("M", bound="SavedModel")


@dataclass(frozen=True)
class ModelRecord:
    """A parsed `config.json`: the registry entry, its config, and the whole record (for model-specific keys)."""

    path: Path
    registry: str
    name: str
    config: dict[str, Any]
    record: dict[str, Any]


def read_model_record(directory: str | Path, registry: str, legacy_key: str, missing_hint: str = "") -> ModelRecord:
    """The `config.json` of a `registry` model directory, new header or `legacy_key`; errors name the file."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise MissingWeightsError(f"{path}: missing model config{missing_hint}")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FusionProxyError(f"{path}: corrupt model config ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise FusionProxyError(f"{path}: not a FusionProxy {registry} config (needs '{HEADER}' and 'config')")
    if record.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise FusionProxyError(
            f"{path}: format_version {record['format_version']} is newer than this package reads ({FORMAT_VERSION})"
        )
    if HEADER in record:
        found, _, name = str(record[HEADER]).partition(":")
        if found != registry:
            raise FusionProxyError(f"{path}: a {found} model directory, not a {registry} one")
    elif legacy_key in record:
        name = str(record[legacy_key])
    else:
        raise FusionProxyError(f"{path}: not a FusionProxy {registry} config (needs '{HEADER}' and 'config')")
    return ModelRecord(path, registry, name, record["config"], record)


def write_model_dir(
    directory: str | Path, module: nn.Module, registry: str, name: str, config: dict[str, Any], legacy_key: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `module`'s weights and the header + config (+ `extra` keys) into `directory`; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {HEADER: f"{registry}:{name}", "format_version": FORMAT_VERSION, legacy_key: name, "config": config,
              **(extra or {})}  # fmt: skip
    save_model(module, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return directory


def load_weights(module: nn.Module, directory: str | Path) -> None:
    """Load `model.safetensors` into `module` (strict, on the CPU)."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise MissingWeightsError(f"{path}: missing model weights")
    try:
        load_model(module, path, strict=True, device="cpu")
    except (SafetensorError, RuntimeError, OSError) as error:
        message = " ".join(str(error).split())[:300]
        raise FusionProxyError(f"{path}: corrupt or mismatched weights ({message})") from None


class SavedModel:
    """Mixin: `save_pretrained(dir)` / `from_pretrained(dir)` in the shared format for an nn.Module class.

    A class names its `model_registry` and `legacy_key` and provides `model_entry()`, `model_config()` and
    `from_model_config(name, config, record)`; `weights_module()` (default: itself) is what the weights are of,
    `model_extra()` any further keys of config.json.
    """

    model_registry: ClassVar[str]
    legacy_key: ClassVar[str]
    missing_hint: ClassVar[str] = ""

    def model_entry(self) -> str:
        raise NotImplementedError

    def model_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_model_config(cls: type[M], name: str, config: dict[str, Any], record: dict[str, Any]) -> M:
        """An untrained model of entry `name` built from `config` (FusionProxyError, TypeError, ValueError or
        KeyError when they do not fit)."""
        raise NotImplementedError

    def weights_module(self) -> nn.Module:
        assert isinstance(self, nn.Module)
        return self

    def model_extra(self) -> dict[str, Any]:
        return {}

    def save_pretrained(self, directory: str | Path) -> Path:
        return write_model_dir(directory, self.weights_module(), self.model_registry, self.model_entry(),
                               self.model_config(), self.legacy_key, self.model_extra())  # fmt: skip

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path) -> M:
        found = read_model_record(directory, cls.model_registry, cls.legacy_key, cls.missing_hint)
        try:
            model = cls.from_model_config(found.name, found.config, found.record)
        except FusionProxyError as error:
            raise FusionProxyError(f"{found.path}: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise FusionProxyError(f"{found.path}: cannot build {found.registry} ({error})") from None
        load_weights(model.weights_module(), directory)
        return model.eval()

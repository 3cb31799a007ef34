"""The teacher registry: `create_teacher(name)` for a fresh teacher, `load_teacher(dir)` for a saved one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FusionProxyError
from ..model_dir import read_model_record
from ..registry import Registry
from .base import Teacher
from .pretrained import PretrainedTeacher

TEACHERS: Registry[Any] = Registry("teacher")


def register_teacher(cls: type) -> type:
    """Class decorator: registers a teacher class under its `name`."""
    TEACHERS.register(cls.name)(cls)
    return cls


def create_teacher(name: str, **config: Any) -> Teacher:
    """A fresh (untrained) teacher `name`, built with `config` (e.g. unet=..., steps=...)."""
    return TEACHERS.get(name).build(**config)


def load_teacher(directory: str | Path) -> Teacher:
    """The teacher saved in `directory` (config.json naming the teacher + model.safetensors)."""
    found = read_model_record(directory, PretrainedTeacher.model_registry, PretrainedTeacher.legacy_key,
                              PretrainedTeacher.missing_hint)  # fmt: skip
    if found.name not in TEACHERS:
        known = ", ".join(list_teachers())
        raise FusionProxyError(f"{found.path}: unknown teacher '{found.name}' (known: {known})")
    return TEACHERS.get(found.name).from_pretrained(directory)


def list_teachers() -> list[str]:
    return TEACHERS.names()

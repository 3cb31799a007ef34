"""Diffusion fusion teachers behind one registry (paper Sec. 3.2): `load_teacher(dir)` / `create_teacher(name)`.

Registered: "masked" (masked-diffusion teacher after Mask-DiFuser) and "ddfm" (DDFM: a diffusion prior with
EM likelihood rectification). Every teacher meets the `Teacher` contract in `base.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..registry import Registry
from .base import Teacher

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
    from ..errors import FusionProxyError
    from .pretrained import read_teacher_config

    name = read_teacher_config(directory)["teacher"]
    if name not in TEACHERS:
        known = ", ".join(list_teachers())
        raise FusionProxyError(f"{Path(directory) / 'config.json'}: unknown teacher '{name}' (known: {known})")
    return TEACHERS.get(name).from_pretrained(directory)


def list_teachers() -> list[str]:
    return TEACHERS.names()


# Teachers register themselves on import.
from . import ddfm, masked  # noqa: E402,F401

__all__ = ["Teacher", "create_teacher", "list_teachers", "load_teacher", "register_teacher"]

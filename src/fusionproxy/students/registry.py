"""The student registry: `create_student(name, **config)` builds any registered architecture."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import FusionStudent

STUDENTS: Registry[FusionStudent] = Registry("student")


def register_student(cls: type[FusionStudent]) -> type[FusionStudent]:
    """Class decorator: registers a FusionStudent subclass under its `name`."""
    STUDENTS.register(cls.name)(cls)
    return cls


def create_student(name: str, **config: Any) -> FusionStudent:
    """Build the student `name` with its config fields overridden by `config`."""
    cls = STUDENTS.get(name)
    return cls(cls.config_class(**config))


def list_students() -> list[str]:
    return STUDENTS.names()

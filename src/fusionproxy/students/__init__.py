"""Student networks behind one constructor: `create_student(name, **config)` (paper Sec. 3.4, Table 4 C)."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import FusionStudent, StudentConfig

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


# Architectures register themselves on import.
from . import convnext_unet, mobile_unet, ultralight  # noqa: E402,F401
from ..dtpf import student as dtpf_student  # noqa: E402,F401

__all__ = ["FusionStudent", "StudentConfig", "create_student", "list_students", "register_student"]

"""Student networks behind one constructor: `create_student(name, **config)` (paper Sec. 3.4, Table 4 C)."""

from __future__ import annotations

# Architectures register themselves on import.
from . import convnext_unet, dtpf_student, mobile_unet, ultralight  # noqa: F401
from .base import FusionStudent, StudentConfig
from .registry import STUDENTS, create_student, list_students, register_student

__all__ = ["STUDENTS", "FusionStudent", "StudentConfig", "create_student", "list_students", "register_student"]

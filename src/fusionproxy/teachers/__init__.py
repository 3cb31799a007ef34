"""Diffusion fusion teachers behind one registry (paper Sec. 3.2): `load_teacher(dir)` / `create_teacher(name)`.

Registered: "masked" (masked-diffusion teacher after Mask-DiFuser) and "ddfm" (DDFM: a diffusion prior with
EM likelihood rectification). Every teacher meets the `Teacher` contract in `base.py`.
"""

from __future__ import annotations

# Teachers register themselves on import.
from . import ddfm, masked  # noqa: F401
from .base import Teacher
from .registry import TEACHERS, create_teacher, list_teachers, load_teacher, register_teacher

__all__ = ["TEACHERS", "Teacher", "create_teacher", "list_teachers", "load_teacher", "register_teacher"]

"""One adapter per VLM family: where the concept token goes, the prompts, and the language-model call."""

from __future__ import annotations

from .base import Backend, Result
from .blip2 import Blip2
from .llava import Llava
from .smolvlm import SmolVLM

BACKENDS: dict[str, type[Backend]] = {"smolvlm": SmolVLM, "blip2": Blip2, "llava": Llava}

__all__ = ["BACKENDS", "Backend", "Blip2", "Llava", "Result", "SmolVLM"]

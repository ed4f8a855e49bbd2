"""Generative backends by name."""

from __future__ import annotations

from common.backends import load_class
from common.backends.generative.base import Edge, GenerativeBackend
from common.config import Settings

BACKENDS: dict[str, str] = {
    "gemini": "common.backends.generative.gemini:GeminiBackend",
}


def new_generative(settings: Settings) -> GenerativeBackend | None:
    """The configured backend, or None when there are no credentials (the stage is skipped)."""
    if not settings.has_generative_credentials:
        return None
    cls = load_class("generative", BACKENDS, settings.generative_backend, GenerativeBackend)
    return cls.from_settings(settings)


__all__ = ["BACKENDS", "Edge", "GenerativeBackend", "new_generative"]

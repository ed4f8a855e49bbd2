"""Caption backends by name."""

from __future__ import annotations

from common.backends import load_class
from common.backends.caption.base import (
    STORY_MAX,
    Caption,
    CaptionAnswer,
    CaptionBackend,
    caption_from_answer,
)
from common.config import Settings

BACKENDS: dict[str, str] = {
    "none": "common.backends.caption.none:NoCaption",
    "gemini": "common.backends.caption.gemini:GeminiCaption",
}


def new_caption(settings: Settings) -> CaptionBackend:
    """The configured backend; unset, `gemini` with credentials, else `none`."""
    cls = load_class("caption", BACKENDS, settings.resolved_caption_backend, CaptionBackend)
    return cls.from_settings(settings)


__all__ = [
    "BACKENDS",
    "STORY_MAX",
    "Caption",
    "CaptionAnswer",
    "CaptionBackend",
    "caption_from_answer",
    "new_caption",
]

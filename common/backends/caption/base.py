"""What every caption backend shares: the caption's shape and the protocol."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar, Self

from PIL import Image
from pydantic import BaseModel, Field

from common.config import Settings
from common.schemas import STORY_MAX, Caption

__all__ = [
    "HASHTAGS_MAX",
    "STORY_MAX",
    "Caption",
    "CaptionAnswer",
    "CaptionBackend",
    "caption_from_answer",
]

HASHTAGS_MAX = 8


class CaptionAnswer(BaseModel):
    """The schema of the model's structured output (snake_case: the model sees these names)."""

    title: str = Field(description="a short listing title, at most 8 words")
    story: str = Field(
        description=f"two or three warm sentences for a listing or a post, at most {STORY_MAX} "
        "characters, using only the facts given and what the image shows"
    )
    hashtags: list[str] = Field(description="3 to 8 relevant hashtags, each starting with #")
    alt_text: str = Field(description="a plain description of the image for screen readers")


def caption_from_answer(answer: CaptionAnswer, language: str) -> Caption:
    """The job's caption from the model's answer, tidied: the story cut at a sentence or word
    within the limit, tags normalised."""
    tags = [_hashtag(tag) for tag in answer.hashtags]
    unique = list(dict.fromkeys(tag for tag in tags if tag))[:HASHTAGS_MAX]
    return Caption(
        title=answer.title.strip(),
        story=shorten(answer.story.strip(), STORY_MAX),
        hashtags=unique,
        alt_text=answer.alt_text.strip(),
        language=language,
    )


def _hashtag(tag: str) -> str:
    word = re.sub(r"[\s#]+", "", tag, flags=re.UNICODE)
    return f"#{word}" if word else ""


def shorten(text: str, limit: int) -> str:
    """`text` within `limit` characters: whole sentences when possible, else whole words."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if end >= limit // 2:
        return head[: end + 1]
    cut = head[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


class CaptionBackend(ABC):
    """Writes a caption for a subject from the image and the facts given."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    @abstractmethod
    def caption(self, image: Image.Image, context: str | None, language: str) -> Caption | None:
        """The caption in `language` (a BCP 47 tag or a language name), or None for no caption.

        Raises CaptionInvalid when the answer does not parse, BackendRefused when the model
        declined, TransientError for what is worth another try.
        """

    def warmup(self) -> None:  # noqa: B027
        """Remote backends have nothing to load; creating the client was the warm-up."""

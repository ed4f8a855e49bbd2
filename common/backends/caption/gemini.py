"""Gemini through google-genai: a caption as structured output, from the facts and the image."""

from __future__ import annotations

from typing import Self

import pydantic
from google import genai
from google.genai import types
from PIL import Image

from common.backends.caption.base import (
    STORY_MAX,
    Caption,
    CaptionAnswer,
    CaptionBackend,
    caption_from_answer,
)
from common.backends.genai import make_client, mapped, png_bytes, why
from common.config import Settings
from common.errors import BackendRefused, CaptionInvalid

PROMPT = (
    "The image is a studio shot of something its owner wants to share: to sell, to lend, or "
    "to find it a home. Write its caption in {language}: a short title, a story of at most "
    "{limit} characters, a few hashtags and alt text describing the image. Use only the facts "
    "below and what the image shows; invent nothing (no prices, sizes or names not given).\n"
    "Facts: {context}"
)
NO_FACTS = "none given"
_SIDE = 768
"""The image is sent at this long edge: enough to describe, cheap in tokens."""
_REFUSED = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}


class GeminiCaption(CaptionBackend):
    name = "gemini"

    def __init__(self, client: genai.Client, model: str) -> None:
        self.client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        client = make_client(settings, who="the gemini caption backend")
        return cls(client, settings.caption_model)

    def caption(self, image: Image.Image, context: str | None, language: str) -> Caption | None:
        small = image.copy()
        small.thumbnail((_SIDE, _SIDE), Image.Resampling.LANCZOS)
        prompt = PROMPT.format(
            language=language, limit=STORY_MAX, context=(context or "").strip() or NO_FACTS
        )
        contents = types.Content(
            role="user",
            parts=[
                types.Part.from_bytes(data=png_bytes(small), mime_type="image/png"),
                types.Part.from_text(text=prompt),
            ],
        )
        config = types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=CaptionAnswer, temperature=0.7
        )
        response = mapped(
            self.model,
            lambda: self.client.models.generate_content(
                model=self.model, contents=contents, config=config
            ),
        )
        if _refused(response):
            raise BackendRefused(f"{self.model} declined to caption the image ({why(response)})")
        answer = response.parsed
        if not isinstance(answer, CaptionAnswer):
            try:
                answer = CaptionAnswer.model_validate_json(response.text or "")
            except pydantic.ValidationError as exc:
                raise CaptionInvalid(
                    f"{self.model} answered no valid caption ({why(response)}): "
                    f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
                ) from None
        try:
            return caption_from_answer(answer, language)
        except pydantic.ValidationError as exc:
            raise CaptionInvalid(f"{self.model} answered an unusable caption: {exc}") from None


def _refused(response: types.GenerateContentResponse) -> bool:
    feedback = response.prompt_feedback
    if feedback and feedback.block_reason:
        return True
    reasons = {c.finish_reason.value for c in response.candidates or [] if c.finish_reason}
    return bool(reasons & _REFUSED) and not (response.text or "").strip()

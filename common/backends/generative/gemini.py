"""Gemini through google-genai: an API key (Gemini API) or Vertex AI (project and location)."""

from __future__ import annotations

from typing import Self

import pydantic
from google import genai
from google.genai import types
from PIL import Image

from common.backends.genai import (
    decoded_image,
    first_image,
    make_client,
    mapped,
    png_bytes,
    why,
)
from common.backends.generative.base import Edge, GenerativeBackend
from common.config import Settings
from common.errors import BackendUnavailable
from common.schemas import Attributes

TAG_PROMPT = (
    "The image is one garment cut out of a photo; a clothes segmentation model labelled it "
    "{label!r}. Describe the garment: its category, its main colours (most prominent first, "
    "plain names), its pattern, and the seasons it suits."
)

COMPLETE_PROMPT = (
    "The image is one garment ({label}) cut out of a photo. The edge of the photo cut it off "
    "at the {edges}, so part of it is missing. Draw the whole garment, completing the missing "
    "part to match the visible part (same shape, colours, pattern, fabric and lighting), "
    "centred on a plain white background, with nothing else in the image."
)


def _edge_phrase(edges: list[Edge]) -> str:
    names = sorted(set(edges), key=("left", "top", "right", "bottom").index)
    if not names:
        return "frame edge"
    if len(names) == 1:
        return f"{names[0]} edge"
    return f"{', '.join(names[:-1])} and {names[-1]} edges"


class GeminiBackend(GenerativeBackend):
    name = "gemini"

    def __init__(self, client: genai.Client, tagging_model: str, completion_model: str) -> None:
        self.client = client
        self.tagging_model = tagging_model
        self.completion_model = completion_model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        client = make_client(settings, who="the gemini backend")
        return cls(client, settings.tagging_model, settings.completion_model)

    def tag(self, garment: Image.Image, label: str) -> Attributes:
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=Attributes,
            temperature=0,
        )
        response = self._generate(
            self.tagging_model, garment, TAG_PROMPT.format(label=label), config
        )
        if isinstance(response.parsed, Attributes):
            return response.parsed
        try:
            return Attributes.model_validate_json(response.text or "")
        except pydantic.ValidationError as exc:
            raise BackendUnavailable(
                f"{self.tagging_model} answered no valid attributes ({why(response)})"
            ) from exc

    def complete(self, garment: Image.Image, label: str, edges: list[Edge]) -> Image.Image:
        prompt = COMPLETE_PROMPT.format(label=label, edges=_edge_phrase(edges))
        config = types.GenerateContentConfig(response_modalities=["IMAGE"])
        response = self._generate(self.completion_model, garment, prompt, config)
        data = first_image(response)
        if data is None:
            raise BackendUnavailable(f"{self.completion_model} answered no image ({why(response)})")
        # A garbled image is a refusal of this request: expand then skips, keeping the
        # garments, instead of paying for every garment again on each redelivery.
        return decoded_image(data, self.completion_model).convert("RGBA")

    def _generate(
        self,
        model: str,
        garment: Image.Image,
        prompt: str,
        config: types.GenerateContentConfig,
    ) -> types.GenerateContentResponse:
        contents = types.Content(
            role="user",
            parts=[
                types.Part.from_bytes(data=png_bytes(garment), mime_type="image/png"),
                types.Part.from_text(text=prompt),
            ],
        )
        return mapped(
            model,
            lambda: self.client.models.generate_content(
                model=model, contents=contents, config=config
            ),
        )

"""An image model through google-genai `generate_content`: both photos and an instruction.

An answer without an image (a safety block, or text only) is a refusal, not a crash.
"""

from __future__ import annotations

from typing import Self

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
from common.backends.tryon.base import Progress, TryonBackend, TryonRequest
from common.config import Settings
from common.errors import BackendRefused

PROMPT = (
    "The first image is a photo of a person; the second is a garment ({description}, worn as "
    "{category}) on a plain background. Draw the same person in the same pose, place, light "
    "and framing, wearing this garment in place of what they wear there, with its colours, "
    "pattern and fabric unchanged. Change nothing else: face, body, hair and background stay "
    "as they are."
)
CATEGORY_WORDS = {
    "tops": "a top",
    "bottoms": "bottoms",
    "one-pieces": "a one-piece",
    "auto": "it is meant to be worn",
}


class GeminiTryon(TryonBackend):
    name = "gemini"
    person_size = 1024
    garment_on = "white"

    def __init__(self, client: genai.Client, model: str) -> None:
        self.client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        client = make_client(settings, who="the gemini try-on backend")
        return cls(client, settings.tryon_gemini_model)

    def generate(self, request: TryonRequest, progress: Progress) -> Image.Image:
        progress("Dressing the person (Gemini)")
        prompt = PROMPT.format(
            description=request.description, category=CATEGORY_WORDS[request.category]
        )
        contents = types.Content(
            role="user",
            parts=[
                types.Part.from_bytes(data=png_bytes(request.person), mime_type="image/png"),
                types.Part.from_bytes(data=png_bytes(request.garment), mime_type="image/png"),
                types.Part.from_text(text=prompt),
            ],
        )
        config = types.GenerateContentConfig(response_modalities=["IMAGE"])
        response = mapped(
            self.model,
            lambda: self.client.models.generate_content(
                model=self.model, contents=contents, config=config
            ),
        )
        data = first_image(response)
        if data is None:
            raise BackendRefused(f"{self.model} answered no image ({why(response)})")
        return decoded_image(data, self.model).convert("RGB")

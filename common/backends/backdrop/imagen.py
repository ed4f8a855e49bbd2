"""Imagen on Vertex AI through google-genai's `generate_images`.

Vertex AI only (Application Default Credentials, `GOOGLE_CLOUD_PROJECT`,
`GOOGLE_CLOUD_LOCATION`). A prompt its safety filters block comes back without an image and
with a reason: a coded refusal, and the job falls back to the gradient.
"""

from __future__ import annotations

from typing import Self

from google import genai
from google.genai import types
from PIL import Image

from common.backends.backdrop.base import BackdropBackend, BackdropRequest, backdrop_prompt, cover
from common.backends.backdrop.gemini import nearest_ratio
from common.backends.genai import generated_image, make_client, mapped
from common.config import Settings

ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")


class ImagenBackdrop(BackdropBackend):
    name = "imagen"

    def __init__(self, client: genai.Client, model: str) -> None:
        self.client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        client = make_client(settings, who="the imagen backdrop backend", vertexai=True)
        return cls(client, settings.backdrop_imagen_model)

    def render(self, request: BackdropRequest) -> Image.Image:
        config = types.GenerateImagesConfig(
            number_of_images=1,
            aspect_ratio=nearest_ratio(request.size, ASPECT_RATIOS),
            output_mime_type="image/png",
            include_rai_reason=True,
            person_generation=types.PersonGeneration.DONT_ALLOW,
        )
        prompt = backdrop_prompt(request)
        response = mapped(
            self.model,
            lambda: self.client.models.generate_images(
                model=self.model, prompt=prompt, config=config
            ),
        )
        image = generated_image(self.model, response.generated_images, "the backdrop")
        return cover(image, request.size)

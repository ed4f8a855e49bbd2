"""Vertex AI's virtual try-on model through google-genai's `recontext_image`.

Vertex AI only (Application Default Credentials, `GOOGLE_CLOUD_PROJECT`, `GOOGLE_CLOUD_LOCATION`).
A result its safety filters removed comes back without an image: a coded refusal.
"""

from __future__ import annotations

from typing import Self

from google import genai
from google.genai import types
from PIL import Image

from common.backends.genai import generated_image, make_client, mapped, png_bytes
from common.backends.tryon.base import Progress, TryonBackend, TryonRequest
from common.config import Settings


class VertexTryon(TryonBackend):
    name = "vertex"
    person_size = 1024
    garment_on = "white"

    def __init__(self, client: genai.Client, model: str) -> None:
        self.client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        client = make_client(settings, who="the vertex try-on backend", vertexai=True)
        return cls(client, settings.tryon_vertex_model)

    def generate(self, request: TryonRequest, progress: Progress) -> Image.Image:
        progress("Dressing the person (Vertex AI)")
        source = types.RecontextImageSource(
            person_image=types.Image(image_bytes=png_bytes(request.person), mime_type="image/png"),
            product_images=[
                types.ProductImage(
                    product_image=types.Image(
                        image_bytes=png_bytes(request.garment), mime_type="image/png"
                    )
                )
            ],
        )
        config = types.RecontextImageConfig(number_of_images=1, output_mime_type="image/png")
        response = mapped(
            self.model,
            lambda: self.client.models.recontext_image(
                model=self.model, source=source, config=config
            ),
        )
        dressed = generated_image(self.model, response.generated_images, "the try-on")
        return dressed.convert("RGB")

"""An image model through google-genai `generate_content`: a backdrop drawn from words alone.

An answer without an image (a safety block, or text only) is a refusal: the job falls back to
the gradient and says why.
"""

from __future__ import annotations

from typing import Self

from google import genai
from google.genai import types
from PIL import Image

from common import imaging
from common.backends.backdrop.base import BackdropBackend, BackdropRequest, backdrop_prompt, cover
from common.backends.genai import first_image, make_client, mapped, why
from common.config import Settings
from common.errors import BackendRefused, BackendUnavailable, TransientError

# The aspect ratios Gemini's image models take; a frame gets the nearest, then is cropped.
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


def nearest_ratio(size: tuple[int, int], choices: tuple[str, ...]) -> str:
    """The choice whose width to height is closest to `size`'s (by log ratio)."""
    import math

    want = math.log(size[0] / size[1])

    def distance(ratio: str) -> float:
        w, h = (int(v) for v in ratio.split(":"))
        return abs(math.log(w / h) - want)

    return min(choices, key=distance)


class GeminiBackdrop(BackdropBackend):
    name = "gemini"

    def __init__(self, client: genai.Client, model: str) -> None:
        self.client = client
        self.model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        client = make_client(settings, who="the gemini backdrop backend")
        return cls(client, settings.backdrop_gemini_model)

    def render(self, request: BackdropRequest) -> Image.Image:
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=nearest_ratio(request.size, ASPECT_RATIOS)),
        )
        prompt = backdrop_prompt(request)
        response = mapped(
            self.model,
            lambda: self.client.models.generate_content(
                model=self.model, contents=prompt, config=config
            ),
        )
        data = first_image(response)
        if data is None:
            raise BackendRefused(f"{self.model} answered no image ({why(response)})")
        try:
            return cover(imaging.open_remote(data), request.size)
        except TransientError as exc:
            raise BackendUnavailable(f"{self.model}: {exc.message}") from exc

"""An SDXL text-to-image Space through gradio_client.

The API is the one of Hugging Face's text-to-image Space template (the `stabilityai/sdxl-turbo`
demo and its many copies): `/infer(prompt, negative_prompt, seed, randomize_seed, width,
height, guidance_scale, num_inference_steps)` answering the image and the seed it used. SDXL
works at about one megapixel: the frame is asked for at a long edge of 1024 (multiples of 32)
and cropped to the frame's exact size. Turbo models want 1 to 4 steps and a guidance of 0
(`CLOSET_BACKDROP_SPACE_STEPS`, `CLOSET_BACKDROP_SPACE_GUIDANCE`).
"""

from __future__ import annotations

from typing import Self

import numpy as np
from PIL import Image

from common import imaging
from common.backends.backdrop.base import BackdropBackend, BackdropRequest, backdrop_prompt, cover
from common.backends.gradio_space import GradioSpace
from common.config import Settings
from common.errors import BackendRefused, BackendUnavailable, ConfigurationError, TransientError

NEGATIVE = "people, person, hands, text, letters, logo, watermark, clutter, objects in the centre"
SEED = 7
LONG_EDGE = 1024
_REFUSAL_WORDS = ("nsfw", "safety", "not allowed", "inappropriate", "blocked")


def generation_size(size: tuple[int, int]) -> tuple[int, int]:
    """`size`'s shape at SDXL's working size: long edge 1024, both sides multiples of 32."""
    width, height = size
    scale = LONG_EDGE / max(width, height)
    return max(256, round(width * scale / 32) * 32), max(256, round(height * scale / 32) * 32)


class SpaceBackdrop(BackdropBackend):
    name = "space"

    def __init__(
        self,
        src: str,
        token: str | None,
        timeout_s: float,
        *,
        api: str,
        steps: int,
        guidance: float,
    ) -> None:
        self.space = GradioSpace(src, token, timeout_s)
        self.api = api
        self.steps = steps
        self.guidance = guidance

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        if not settings.backdrop_space:
            raise ConfigurationError(
                "the space backdrop backend needs CLOSET_BACKDROP_SPACE (a Space id or URL)"
            )
        return cls(
            settings.backdrop_space,
            settings.hf_token,
            settings.remote_timeout_s,
            api=settings.backdrop_space_api,
            steps=settings.backdrop_space_steps,
            guidance=settings.backdrop_space_guidance,
        )

    def render(self, request: BackdropRequest) -> Image.Image:
        width, height = generation_size(request.size)
        try:
            result = self.space.predict(
                backdrop_prompt(request),
                NEGATIVE,
                SEED,
                False,  # randomize_seed: the same request draws the same backdrop
                width,
                height,
                self.guidance,
                self.steps,
                api_name=self.api,
            )
        except BackendUnavailable as exc:
            if any(word in exc.message.lower() for word in _REFUSAL_WORDS):
                raise BackendRefused(exc.message) from exc
            raise
        outputs = self.space.outputs(result)
        if not outputs:
            raise BackendUnavailable(f"Space {self.space.src} answered no image")
        try:
            image = imaging.open_remote(outputs[0]).convert("RGB")
        except TransientError as exc:
            raise BackendUnavailable(f"Space {self.space.src}: {exc.message}") from exc
        if int(np.asarray(image).max(initial=0)) < 8:
            # diffusers' safety checker answers a black image in place of a flagged one.
            raise BackendRefused(f"Space {self.space.src} answered a blacked-out image (filtered)")
        return cover(image, request.size)

    def warmup(self) -> None:
        self.space.warmup()

    def close(self) -> None:
        self.space.close()

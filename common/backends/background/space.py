"""A Hugging Face Space (or any Gradio app) serving a rembg-style API: image in, RGBA out."""

from __future__ import annotations

import threading
from typing import Self

from PIL import Image

from common import imaging
from common.backends.background.base import BackgroundBackend
from common.backends.gradio_space import GradioSpace
from common.config import Settings
from common.errors import BackendUnavailable, ConfigurationError, TransientError


class SpaceBackground(BackgroundBackend):
    name = "space"

    def __init__(self, src: str, api_name: str, token: str | None, timeout_s: float) -> None:
        self.space = GradioSpace(src, token, timeout_s)
        self._api_name = api_name

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        # No connection here: gradio_client.Client fetches the Space's config while it is
        # built, and a sleeping Space answers slowly or with 503 for minutes. Failing at import
        # would crash-loop the instance over a remote hiccup; connecting on first use (or on
        # the warm-up ping) turns the same hiccup into a TransientError that Pub/Sub retries.
        if not settings.space:
            raise ConfigurationError("the space backend needs CLOSET_SPACE (a Space id or URL)")
        return cls(settings.space, settings.space_api, settings.hf_token, settings.remote_timeout_s)

    def remove(self, image: Image.Image) -> Image.Image:
        from gradio_client import handle_file

        upload = self.space.files / f"input-{threading.get_ident()}.png"
        image.convert("RGB").save(upload, "PNG", compress_level=1)
        try:
            result = self.space.predict(handle_file(str(upload)), api_name=self._api_name)
        finally:
            upload.unlink(missing_ok=True)
        return self._cutout(result, image)

    def warmup(self) -> None:
        self.space.warmup()

    def close(self) -> None:
        self.space.close()

    def _cutout(self, result: object, image: Image.Image) -> Image.Image:
        outputs: list[Image.Image] = []
        for data in self.space.outputs(result):
            try:
                outputs.append(imaging.open_remote(data))
            except TransientError:
                continue
        with_alpha = [
            o for o in outputs if o.mode in ("RGBA", "LA", "PA") or "transparency" in o.info
        ]
        if with_alpha:
            cutout = with_alpha[-1].convert("RGBA")
        else:
            masks = [o for o in outputs if o.mode in ("L", "1")]
            if not masks:
                raise BackendUnavailable(
                    f"Space {self.space.src} returned no image with transparency"
                )
            cutout = image.convert("RGBA")
            cutout.putalpha(masks[-1].convert("L").resize(image.size, Image.Resampling.LANCZOS))
        if cutout.size != image.size:
            cutout = cutout.resize(image.size, Image.Resampling.LANCZOS)
        return cutout

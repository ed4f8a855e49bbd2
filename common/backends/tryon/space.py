"""An IDM-VTON style Hugging Face Space through gradio_client (its `/tryon` API).

The API takes the person as an image-editor value (`background`, `layers`, `composite`), the
garment image, a garment description, auto-mask, auto-crop, denoising steps and a seed, and
answers the dressed person and the mask it used. IDM-VTON's weights are licensed CC BY-NC-SA
4.0: non-commercial use only.
"""

from __future__ import annotations

import threading
from typing import Any, Self

from PIL import Image

from common import imaging
from common.backends.gradio_space import GradioSpace
from common.backends.tryon.base import Progress, TryonBackend, TryonRequest
from common.config import Settings
from common.errors import BackendUnavailable, ConfigurationError, TransientError

API = "/tryon"
SEED = 42


class SpaceTryon(TryonBackend):
    name = "space"
    person_size = 1024  # IDM-VTON works at 768x1024
    garment_on = "white"

    def __init__(self, src: str, token: str | None, timeout_s: float, steps: int) -> None:
        self.space = GradioSpace(src, token, timeout_s)
        self.steps = steps

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        if not settings.tryon_space:
            raise ConfigurationError(
                "the space try-on backend needs CLOSET_TRYON_SPACE (a Space id or URL)"
            )
        return cls(
            settings.tryon_space,
            settings.hf_token,
            settings.remote_timeout_s,
            settings.tryon_space_steps,
        )

    def generate(self, request: TryonRequest, progress: Progress) -> Image.Image:
        from gradio_client import handle_file

        tag = threading.get_ident()
        person = self.space.files / f"person-{tag}.png"
        garment = self.space.files / f"garment-{tag}.png"
        request.person.convert("RGB").save(person, "PNG", compress_level=1)
        request.garment.convert("RGB").save(garment, "PNG", compress_level=1)
        editor = {"background": handle_file(str(person)), "layers": [], "composite": None}
        said: list[str] = []

        def report(status: Any) -> None:
            text = _say(status)
            if not said or said[-1] != text:
                said.append(text)
                progress(text)

        try:
            result = self.space.predict(
                editor,
                handle_file(str(garment)),
                request.description,
                True,  # auto-mask: the Space finds the garment area on the person
                False,  # auto-crop
                self.steps,
                SEED,
                api_name=API,
                on_status=report,
            )
        finally:
            person.unlink(missing_ok=True)
            garment.unlink(missing_ok=True)
        outputs = self.space.outputs(result)
        if not outputs:
            raise BackendUnavailable(f"Space {self.space.src} answered no image")
        try:
            return imaging.open_remote(outputs[0]).convert("RGB")
        except TransientError as exc:
            raise BackendUnavailable(f"Space {self.space.src}: {exc.message}") from exc

    def warmup(self) -> None:
        self.space.warmup()

    def close(self) -> None:
        self.space.close()


def _say(status: Any) -> str:
    """The Space's state in words: its queue position when it has one."""
    code = getattr(status.code, "name", str(status.code))
    if code in ("IN_QUEUE", "JOINING_QUEUE", "STARTING") and status.rank is not None:
        size = f" of {status.queue_size}" if status.queue_size else ""
        return f"Waiting in the Space's queue (position {status.rank + 1}{size})"
    if code in ("IN_QUEUE", "JOINING_QUEUE", "STARTING", "SENDING_DATA"):
        return "Waiting for the Space"
    return "Dressing the person (Space)"

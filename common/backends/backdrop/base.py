"""What every backdrop backend shares: the request, the protocol, and the fallback rule."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from PIL import Image, ImageOps

from common.config import Settings

Style = Literal["white", "pastel", "gradient", "scene"]
STYLES: tuple[Style, ...] = ("white", "pastel", "gradient", "scene")
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class BackdropRequest:
    style: Style
    prompt: str | None
    """What the scene shows (style `scene`); other styles may ignore it."""
    size: tuple[int, int]
    """Width and height of the backdrop to render."""
    palette: tuple[RGB, ...] = ()
    """The subject's main colours, most prominent first (see `common.studio.palette`)."""


@dataclass(frozen=True)
class Backdrop:
    image: Image.Image
    """RGB of the requested size."""
    backend: str
    """The backend that drew it."""
    fallback: str | None = None
    """Why the configured backend's image was not used, when it was not."""


class BackdropBackend(ABC):
    """Draws an empty background for a subject."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the client; raise ConfigurationError when it cannot work at all."""

    @abstractmethod
    def render(self, request: BackdropRequest) -> Image.Image:
        """An RGB image of `request.size`.

        Raises BackendRefused when the model declined the prompt, TransientError for what is
        worth another try, other PermanentErrors for what never works.
        """

    def warmup(self) -> None:  # noqa: B027
        """Remote backends have nothing to load; creating the client was the warm-up."""


def cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` scaled to cover `size` and centre-cropped to it, as RGB."""
    return ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS)


def hex_colour(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


STYLE_WORDS: dict[Style, str] = {
    "white": "a seamless white studio sweep",
    "pastel": "a seamless pastel studio backdrop, soft and airy",
    "gradient": "a smooth studio gradient backdrop",
    "scene": "a softly blurred real-world setting",
}


def backdrop_prompt(request: BackdropRequest) -> str:
    """The instruction a generative backend sends: an empty stage that suits the subject."""
    words = STYLE_WORDS[request.style]
    if request.style == "scene" and request.prompt:
        words = f"{request.prompt.strip()}, as a softly blurred background"
    colours = ", ".join(hex_colour(c) for c in request.palette[:3])
    harmony = f" Colours that flatter a subject in {colours}." if colours else ""
    return (
        f"A photograph of {words}, empty, for a product shot: a subject will be placed in the "
        "centre afterwards. Soft even light, shallow depth of field, a floor or surface in the "
        f"lower third, no objects in the centre, no people, no text, no logos.{harmony}"
    )

"""What every upscale backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, Self

from PIL import Image

from common.config import Settings

Device = Literal["cpu", "cuda"]


def target_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """`size` times `scale`, rounded, at least one pixel a side."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


class UpscaleBackend(ABC):
    """Enlarges an RGBA image; the alpha is scaled with the colour."""

    name: ClassVar[str]
    device: Device = "cpu"
    """Where the last (or, before any, the next) upscale runs."""

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Load the model; raise ConfigurationError when its file is missing."""

    @abstractmethod
    def upscale(self, image: Image.Image, scale: float) -> Image.Image:
        """`image` (RGBA) enlarged `scale` times, as RGBA of `target_size(image.size, scale)`."""

    def warmup(self) -> None:
        self.upscale(Image.new("RGBA", (16, 16)), 2.0)

"""What every generative backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

from PIL import Image

from common.config import Settings
from common.schemas import Attributes

Edge = str
"""One of "left", "top", "right", "bottom": a side of the frame a garment is cut off by."""


class GenerativeBackend(ABC):
    """Completes garments cut off by the frame and tags their attributes."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the client; raise ConfigurationError when no credentials are configured."""

    @abstractmethod
    def tag(self, garment: Image.Image, label: str) -> Attributes:
        """Attributes of the garment in the RGBA crop `garment` (structured output)."""

    @abstractmethod
    def complete(self, garment: Image.Image, label: str, edges: list[Edge]) -> Image.Image:
        """The garment with the parts cut off at `edges` drawn in, as an RGBA image."""

    def warmup(self) -> None:  # noqa: B027
        """Remote backends have nothing to load; creating the client was the warm-up."""

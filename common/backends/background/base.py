"""What every background backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

from PIL import Image

from common.config import Settings


class BackgroundBackend(ABC):
    """Cuts the foreground out of an RGB image."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the backend, loading any model now; missing weights raise ConfigurationError."""

    @abstractmethod
    def remove(self, image: Image.Image) -> Image.Image:
        """Return an RGBA image of the same size whose alpha is the foreground.

        Raises PermanentError subclasses for requests that can never succeed and
        TransientError for ones worth retrying (429, 5xx, time-outs).
        """

    def warmup(self) -> None:
        """Touch the model so the first real request pays no lazy initialisation."""
        self.remove(Image.new("RGB", (64, 64), (255, 255, 255)))

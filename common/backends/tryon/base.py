"""What every try-on backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from PIL import Image

from common.config import Settings

Progress = Callable[[str], None]
"""Tells the job what the backend is doing, in words ("In the queue (position 3)")."""

CATEGORIES = ("tops", "bottoms", "one-pieces", "auto")


@dataclass(frozen=True)
class TryonRequest:
    person: Image.Image
    """RGB, already at the backend's preferred size."""
    garment: Image.Image
    """RGB on white or RGBA, as the backend's `garment_on` asks."""
    category: str
    """One of `CATEGORIES`."""
    description: str
    """A few words on the garment (its label and tags), for backends that take text."""


class TryonBackend(ABC):
    """Dresses the person in `request.person` with the garment in `request.garment`."""

    name: ClassVar[str]
    person_size: ClassVar[int] = 1024
    """The long edge of the person photo the backend works best with."""
    garment_on: ClassVar[Literal["white", "transparent"]] = "white"

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the client; raise ConfigurationError when it cannot work at all."""

    @abstractmethod
    def generate(self, request: TryonRequest, progress: Progress) -> Image.Image:
        """The person wearing the garment, as an RGB image.

        Raises TransientError for what is worth another delivery (429, 5xx, time-outs, busy
        queues), BackendRefused when the model declined the request, NoPersonFound when it saw
        no person, and other PermanentErrors for requests that can never succeed.
        """

    def warmup(self) -> None:  # noqa: B027
        """Remote backends have nothing to load; creating the client was the warm-up."""

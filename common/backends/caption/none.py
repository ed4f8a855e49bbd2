"""No caption: the studio shot comes without words."""

from __future__ import annotations

from typing import Self

from PIL import Image

from common.backends.caption.base import Caption, CaptionBackend
from common.config import Settings


class NoCaption(CaptionBackend):
    name = "none"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def caption(self, image: Image.Image, context: str | None, language: str) -> Caption | None:
        return None

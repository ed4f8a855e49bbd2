"""Lanczos resampling: no model, no repair of a poor photo, but instant and always there."""

from __future__ import annotations

from typing import Self

from PIL import Image

from common.backends.upscale.base import UpscaleBackend, target_size
from common.config import Settings


def resize_rgba(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos; Pillow resamples RGBA premultiplied, so hidden colours do not bleed in."""
    rgba = image.convert("RGBA")
    if rgba.size == size:
        return rgba.copy()
    return rgba.resize(size, Image.Resampling.LANCZOS)


class LanczosUpscale(UpscaleBackend):
    name = "lanczos"
    device = "cpu"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def upscale(self, image: Image.Image, scale: float) -> Image.Image:
        return resize_rgba(image, target_size(image.size, scale))

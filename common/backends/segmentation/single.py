"""Single-garment mode: the whole cut-out is one item (no segmentation weights configured)."""

from __future__ import annotations

from typing import Self

from PIL import Image

from common.backends.segmentation.base import GarmentMask, Mask, SegmentationBackend
from common.config import Settings


class SingleGarment(SegmentationBackend):
    name = "single"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def segment(self, image: Image.Image, foreground: Mask) -> list[GarmentMask]:
        if not foreground.any():
            return []
        return [GarmentMask(label="garment", mask=foreground)]

"""What every segmentation backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt
from PIL import Image

from common.config import Settings

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class GarmentMask:
    label: str
    mask: Mask


class SegmentationBackend(ABC):
    """Finds the garments in a working image."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    @abstractmethod
    def segment(self, image: Image.Image, foreground: Mask) -> list[GarmentMask]:
        """One mask per garment found in the RGB `image`, largest first.

        `foreground` is the cut-out's alpha thresholded at one half; backends may use it
        to restrict or replace their own masks.
        """

    def warmup(self) -> None:
        self.segment(Image.new("RGB", (64, 64)), np.ones((64, 64), dtype=np.bool_))

"""No model at all: the garment laid over the person's silhouette, for offline runs and tests.

It is a preview, not a try-on: the garment is scaled to the width of the person's shoulders
(or hips) and pasted with its alpha, with no pose or drape. The person is whatever stands out
from a plain backdrop (the classic background model), so a photo with nothing in front of its
backdrop is refused as `no_person_found`, as a real try-on backend would.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from PIL import Image

from common.backends.background.classic import ClassicBackground
from common.backends.tryon.base import Progress, TryonBackend, TryonRequest
from common.config import Settings
from common.errors import NoPersonFound

# Below this share of the frame nothing stands out enough to be a person.
MIN_PERSON = 0.03
# Where each category sits on a standing person, as fractions of the silhouette's height.
BANDS = {
    "tops": (0.18, 0.55),
    "bottoms": (0.48, 0.95),
    "one-pieces": (0.18, 0.85),
    "auto": (0.18, 0.55),
}


class OverlayTryon(TryonBackend):
    name = "overlay"
    garment_on = "transparent"

    def __init__(self) -> None:
        self.silhouette = ClassicBackground()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def generate(self, request: TryonRequest, progress: Progress) -> Image.Image:
        person = request.person.convert("RGB")
        alpha = np.asarray(self.silhouette.remove(person).getchannel("A")) >= 128
        if float(alpha.mean()) < MIN_PERSON:
            raise NoPersonFound("nothing stands out from the backdrop of the person photo")
        rows = np.flatnonzero(alpha.any(axis=1))
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        top_band, bottom_band = BANDS[request.category]
        band_top = top + round((bottom - top) * top_band)
        band_bottom = top + round((bottom - top) * bottom_band)
        cols = np.flatnonzero(alpha[band_top:band_bottom].any(axis=0))
        left, right = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, person.width)

        garment = request.garment.convert("RGBA")
        box = garment.getbbox() or (0, 0, garment.width, garment.height)
        garment = garment.crop(box)
        scale = min((right - left) / garment.width, (band_bottom - band_top) / garment.height)
        size = (max(1, round(garment.width * scale)), max(1, round(garment.height * scale)))
        garment = garment.resize(size, Image.Resampling.LANCZOS)
        x = left + (right - left - garment.width) // 2
        dressed = person.copy()
        dressed.paste(garment, (x, band_top), garment)
        return dressed

    def warmup(self) -> None:
        self.silhouette.warmup()

"""Single-garment mode (no segmentation weights configured): each separate piece of the
cut-out is one item, so a flat-lay of three garments gives three.

A garment with a hole is still one connected piece. A thin strap or string that the cut-out
lost in places leaves small or thin pieces: those join the nearest garment instead of becoming
items.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from PIL import Image
from scipy import ndimage

from common.backends.segmentation.base import GarmentMask, Mask, SegmentationBackend
from common.config import Settings
from common.morphology import erode

_EIGHT = np.ones((3, 3), dtype=bool)
# A piece is a garment of its own when it is at least this share of the image...
_MIN_SHARE = 0.004
# ... and of the largest piece; smaller pieces are fragments (strap ends, laces, tags).
_MIN_OF_LARGEST = 0.04
# ... and thicker than this share of the image's short side: a strap or a string is not.
_MIN_THICKNESS = 0.02


class SingleGarment(SegmentationBackend):
    name = "single"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def segment(self, image: Image.Image, foreground: Mask) -> list[GarmentMask]:
        if not foreground.any():
            return []
        labels, count = ndimage.label(foreground, structure=_EIGHT)
        if count == 1:
            return [GarmentMask(label="garment", mask=foreground)]
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        sizes[0] = 0
        floor = max(_MIN_SHARE * foreground.size, _MIN_OF_LARGEST * sizes.max())
        radius = max(1, round(_MIN_THICKNESS * min(foreground.shape) / 2))
        core = erode(foreground, radius, "square", outside=False)
        thick = np.bincount(labels[core], minlength=count + 1) > 0
        garments = np.flatnonzero((sizes >= floor) & thick)
        if len(garments) == 0:
            garments = np.array([int(sizes.argmax())])
        owner = np.zeros(count + 1, dtype=np.intp)
        owner[garments] = garments
        fragments = np.flatnonzero((sizes > 0) & (owner == 0))
        if len(fragments):
            # Each fragment joins the garment nearest to it (by its own nearest pixel).
            _, (iy, ix) = ndimage.distance_transform_edt(
                ~np.isin(labels, garments), return_indices=True
            )
            nearest = labels[iy, ix]
            for fragment in fragments:
                inside = labels == fragment
                owner[fragment] = np.bincount(nearest[inside]).argmax()
        merged = owner[labels]
        order = sorted(garments, key=lambda g: -int(sizes[owner == g].sum()))
        return [GarmentMask(label="garment", mask=merged == g) for g in order]

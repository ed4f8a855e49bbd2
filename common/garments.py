"""Garment geometry: boxes, frame edges, and the RGBA image of one garment."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage

from common.schemas import BBox

Mask = npt.NDArray[np.bool_]


def bbox_of(mask: Mask) -> BBox:
    """left, top, right, bottom (exclusive) of the true pixels; zeros for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def touched_edges(mask: Mask, min_run: int = 3) -> list[str]:
    """Frame edges the garment is cut off by: at least `min_run` of its pixels on that edge."""
    edges = {
        "left": mask[:, 0],
        "top": mask[0, :],
        "right": mask[:, -1],
        "bottom": mask[-1, :],
    }
    return [name for name, line in edges.items() if int(line.sum()) >= min_run]


def garment_image(cutout: Image.Image, mask: Mask, bbox: BBox, pad: int = 4) -> Image.Image:
    """The garment alone: the cut-out's soft alpha limited to the (slightly grown) mask."""
    grown = ndimage.binary_dilation(mask, iterations=2)
    rgba = np.asarray(cutout.convert("RGBA")).copy()
    rgba[..., 3] = np.where(grown, rgba[..., 3], 0)
    left, top, right, bottom = bbox
    height, width = mask.shape
    box = (
        max(0, left - pad),
        max(0, top - pad),
        min(width, right + pad),
        min(height, bottom + pad),
    )
    return Image.fromarray(rgba, "RGBA").crop(box)


def mask_to_image(mask: Mask) -> Image.Image:
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")


def image_to_mask(image: Image.Image) -> Mask:
    return np.asarray(image.convert("L")) >= 128

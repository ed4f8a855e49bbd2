"""Garment geometry: boxes, frame edges, and the RGBA image of one garment."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from common.morphology import dilate
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


GROW = 2
"""Pixels the mask is grown by, so the cut-out's soft edge is kept whole."""


def garment_image(cutout: Image.Image, mask: Mask, bbox: BBox, pad: int = 4) -> Image.Image:
    """The garment alone: the cut-out's soft alpha limited to the (slightly grown) mask, in
    its box widened by `pad`.

    Only the box and the `GROW` pixels around it are read: what the growing mask reaches
    inside the box depends on nothing further out, so the result is the whole image's.
    """
    height, width = mask.shape
    left, top, right, bottom = bbox
    box = (
        max(0, left - pad),
        max(0, top - pad),
        min(width, right + pad),
        min(height, bottom + pad),
    )
    x0, y0 = max(0, box[0] - GROW), max(0, box[1] - GROW)
    x1, y1 = min(width, box[2] + GROW), min(height, box[3] + GROW)
    grown = dilate(mask[y0:y1, x0:x1], GROW)
    rgba = np.array(cutout.crop((x0, y0, x1, y1)).convert("RGBA"))
    rgba[..., 3] = np.where(grown, rgba[..., 3], 0)
    inner = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
    return Image.fromarray(rgba, "RGBA").crop(inner)


def mask_to_image(mask: Mask) -> Image.Image:
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")


def image_to_mask(image: Image.Image) -> Mask:
    return np.asarray(image.convert("L")) >= 128

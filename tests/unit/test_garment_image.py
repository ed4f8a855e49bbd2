"""`garment_image` reads only the garment's box and the margin its grown mask needs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from common.garments import GROW, bbox_of, garment_image


def whole_image_way(cutout: Image.Image, mask: np.ndarray, pad: int = 4) -> Image.Image:
    """The definition: grow the mask over the whole image, keep the alpha there, then crop."""
    grown = ndimage.binary_dilation(mask, iterations=GROW)
    rgba = np.array(cutout.convert("RGBA"))
    rgba[..., 3] = np.where(grown, rgba[..., 3], 0)
    left, top, right, bottom = bbox_of(mask)
    height, width = mask.shape
    box = (
        max(0, left - pad),
        max(0, top - pad),
        min(width, right + pad),
        min(height, bottom + pad),
    )
    return Image.fromarray(rgba, "RGBA").crop(box)


@pytest.mark.parametrize("seed", range(6))
def test_the_garment_is_the_one_the_whole_image_gives(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = 90, 120
    cutout = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    mask = np.zeros((height, width), dtype=bool)
    # A blob anywhere, the frame's edges included, with a stray pixel at its box's corner.
    top, left = rng.integers(0, height - 10), rng.integers(0, width - 10)
    mask[top : top + rng.integers(3, 40), left : left + rng.integers(3, 60)] = True
    mask &= rng.random((height, width)) > 0.3
    mask[top, left] = True

    ours = garment_image(cutout, mask, bbox_of(mask))

    expected = whole_image_way(cutout, mask)
    assert ours.size == expected.size
    assert np.array_equal(np.asarray(ours), np.asarray(expected))

"""The shifted morphology gives scipy's pixels exactly, at the image border too."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from common.morphology import dilate, erode

CROSS = ndimage.generate_binary_structure(2, 1)
SQUARE = np.ones((3, 3), dtype=bool)


def masks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:57, :71]
    blob = ((yy - 30) ** 2 / 20**2 + (xx - 30) ** 2 / 35**2) < 1  # touches the left edge
    return [
        rng.random((57, 71)) < 0.5,
        rng.random((40, 33)) < 0.9,
        blob,
        ~blob,
        np.ones((9, 12), dtype=bool),
        np.zeros((9, 12), dtype=bool),
        rng.random((1, 20)) < 0.5,
    ]


@pytest.mark.parametrize("shape", ["cross", "square"])
@pytest.mark.parametrize("iterations", [1, 2, 4])
def test_dilation_and_erosion_match_scipy(shape, iterations):
    structure = CROSS if shape == "cross" else SQUARE
    for mask in masks():
        expected = ndimage.binary_dilation(mask, structure=structure, iterations=iterations)
        assert np.array_equal(dilate(mask, iterations, shape), expected)
        expected = ndimage.binary_erosion(
            mask, structure=structure, iterations=iterations, border_value=1
        )
        assert np.array_equal(erode(mask, iterations, shape), expected)
        expected = ndimage.binary_erosion(mask, structure=structure, iterations=iterations)
        assert np.array_equal(erode(mask, iterations, shape, outside=False), expected)


def test_the_input_mask_is_left_as_it_was():
    mask = masks()[0]
    before = mask.copy()
    dilate(mask, 2, "square")
    erode(mask, 2, "cross")
    assert np.array_equal(mask, before)

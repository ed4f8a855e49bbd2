"""Single-garment mode: one item per separate garment of the cut-out, fragments kept with theirs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from common.backends.segmentation.single import SingleGarment

BACKEND = SingleGarment()
IMAGE = Image.new("RGB", (200, 120))


def canvas() -> np.ndarray:
    return np.zeros((120, 200), dtype=np.bool_)


def test_a_flat_lay_of_three_separate_garments_is_three_items() -> None:
    foreground = canvas()
    foreground[10:110, 5:70] = True  # 6500 px
    foreground[20:100, 80:140] = True  # 4800 px
    foreground[40:80, 150:190] = True  # 1600 px

    items = BACKEND.segment(IMAGE, foreground)

    assert [int(item.mask.sum()) for item in items] == [6500, 4800, 1600]
    assert [item.label for item in items] == ["garment"] * 3
    assert np.array_equal(np.logical_or.reduce([item.mask for item in items]), foreground)


def test_a_garment_with_a_hole_is_one_item() -> None:
    foreground = canvas()
    foreground[10:110, 40:160] = True
    foreground[40:80, 80:120] = False

    items = BACKEND.segment(IMAGE, foreground)

    assert len(items) == 1
    assert np.array_equal(items[0].mask, foreground)


def test_pieces_of_a_broken_thin_strap_join_their_garment() -> None:
    foreground = canvas()
    foreground[50:110, 40:160] = True  # the body
    foreground[20:48, 60:62] = True  # a strap the cut-out lost where it meets the body
    foreground[18:20, 62:100] = True
    foreground[20:40, 100:102] = True  # the strap's other end, separate again

    items = BACKEND.segment(IMAGE, foreground)

    assert len(items) == 1
    assert np.array_equal(items[0].mask, foreground)


def test_fragments_join_the_nearest_of_several_garments() -> None:
    foreground = canvas()
    foreground[10:110, 5:70] = True
    foreground[10:110, 120:190] = True
    foreground[50:53, 110:114] = True  # a tag near the right garment

    items = BACKEND.segment(IMAGE, foreground)

    assert len(items) == 2
    right = next(item for item in items if item.mask[60, 150])
    assert right.mask[51, 111]


def test_an_empty_cutout_has_no_items() -> None:
    assert BACKEND.segment(IMAGE, canvas()) == []

"""What a cut-out subject is to the studio: where it is and which colours it wears."""

from __future__ import annotations

import numpy as np
from PIL import Image

from common.errors import NoSubjectFound

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]

SOLID = 16
"""Alpha at or below this (of 255) is matting noise, not subject: it does not widen the box."""
_PALETTE_SIDE = 96
_SAME = 36
"""Colours closer than this (sum of channel differences) are one colour of the palette."""


def subject_box(rgba: Image.Image) -> Box:
    """(left, top, right, bottom), right and bottom exclusive, of the subject's visible pixels."""
    alpha = rgba.getchannel("A") if rgba.mode == "RGBA" else rgba.convert("RGBA").getchannel("A")
    box = alpha.point(lambda a: 255 if a > SOLID else 0).getbbox()
    if box is None:
        raise NoSubjectFound("the cut-out is empty: there is no subject to place")
    return box


def trimmed(rgba: Image.Image) -> Image.Image:
    """The cut-out without its wholly transparent border: the same subject, fewer pixels for
    every later step to write, read and decode (the box is found again in what is kept)."""
    keep = rgba.getchannel("A").getbbox()
    if keep is None or keep == (0, 0, *rgba.size):
        return rgba
    return rgba.crop(keep)


def palette(rgba: Image.Image, n: int = 3) -> tuple[RGB, ...]:
    """The subject's `n` main colours, most prominent first (median cut on opaque pixels)."""
    if n < 1:
        return ()
    small = rgba.convert("RGBA")
    small.thumbnail((_PALETTE_SIDE, _PALETTE_SIDE), Image.Resampling.BOX)
    array = np.asarray(small)
    opaque = array[array[..., 3] >= 200][:, :3]
    if not len(opaque):
        return ()
    strip = Image.fromarray(np.ascontiguousarray(opaque[None, :, :]), "RGB")
    quantised = strip.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
    colours = quantised.getpalette() or []
    counts = sorted(quantised.getcolors(n) or [], reverse=True)
    found: list[RGB] = []
    for _, index in counts:
        assert isinstance(index, int)  # a palette image counts indices
        r, g, b = colours[3 * index : 3 * index + 3]
        # Median cut splits even a single colour n ways: keep only colours that differ.
        if all(
            sum(abs(p - q) for p, q in zip((r, g, b), seen, strict=True)) > _SAME for seen in found
        ):
            found.append((r, g, b))
    return tuple(found[:n])

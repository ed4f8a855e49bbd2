"""Pillow composition of a studio shot: the subject on its backdrop, in one aspect's frame.

Placement: the subject's box (see `subject_box`) is scaled to fit, whole, inside the frame less
a margin of `MARGIN` of the frame's width on the left, top and right and `MARGIN_BOTTOM` below
(room for the contact shadow), and centred in that area. A soft contact shadow from the bottom
of the subject's own silhouette darkens the backdrop under it. The subject's colours are nudged
toward the backdrop's colour cast (subtle), and its edge colours are decontaminated: the pixels
of a cut-out's soft edge still carry the old background, which shows as a light halo on a dark
backdrop, so they take the colour of the subject's interior next to them.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter, ImageOps, ImageStat

from common.studio.subject import Box, subject_box

ASPECTS: dict[str, tuple[int, int]] = {"1:1": (1, 1), "4:5": (4, 5), "9:16": (9, 16)}
"""Width to height of each frame a studio job may ask for."""
WIDTH = 1080
MARGIN = 0.08
"""Empty space left, above and right of the subject's box, as a fraction of the frame's width."""
MARGIN_BOTTOM = 0.12
"""Empty space below the subject's box (the contact shadow lies in it), same unit."""
SHADOW_OPACITY = 0.42
COLOUR_MATCH = 0.12
"""How far the subject takes on the backdrop's colour cast (0 none, 1 all of it)."""
_EDGE = 2
"""Pixels inside the alpha's edge still counted as edge (a cut-out's mask runs a little wide)."""
_KERNEL = 6
"""How far outside the subject a resampling kernel reads colour when the cut-out is resized."""
_SNAP = 2
"""A cut-out this many pixels off its placement is used at its own size (see `_snapped`)."""


@dataclass(frozen=True)
class Placement:
    """Where the subject's box lands in a frame: its scaled size and its top-left corner."""

    frame: tuple[int, int]
    size: tuple[int, int]
    origin: tuple[int, int]

    @property
    def box(self) -> Box:
        x, y = self.origin
        return x, y, x + self.size[0], y + self.size[1]


def frame_size(aspect: str, width: int = WIDTH) -> tuple[int, int]:
    try:
        w, h = ASPECTS[aspect]
    except KeyError:
        raise ValueError(f"unknown aspect {aspect!r}; choose one of {', '.join(ASPECTS)}") from None
    return width, round(width * h / w)


def subject_area(aspect: str, width: int = WIDTH) -> Box:
    """The part of the frame the subject's box must lie in: the frame less its margins."""
    frame_w, frame_h = frame_size(aspect, width)
    side, below = round(MARGIN * width), round(MARGIN_BOTTOM * width)
    return side, side, frame_w - side, frame_h - below


def place(subject: tuple[int, int], aspect: str, width: int = WIDTH) -> Placement:
    """Where a subject box of this size goes: as large as fits the area, centred in it."""
    left, top, right, bottom = subject_area(aspect, width)
    area_w, area_h = right - left, bottom - top
    box_w, box_h = subject
    scale = min(area_w / box_w, area_h / box_h)
    size = (min(area_w, max(1, round(box_w * scale))), min(area_h, max(1, round(box_h * scale))))
    return centred(size, aspect, width)


def centred(size: tuple[int, int], aspect: str, width: int = WIDTH) -> Placement:
    """A box of `size` (which fits the area) centred in the aspect's area."""
    left, top, right, bottom = subject_area(aspect, width)
    origin = (left + (right - left - size[0]) // 2, top + (bottom - top - size[1]) // 2)
    return Placement(frame_size(aspect, width), size, origin)


def required_subject_size(
    aspects: Iterable[str], width: int = WIDTH, subject: tuple[int, int] | None = None
) -> int:
    """The long edge the subject's box needs so that no frame has to enlarge it.

    With `subject` (its box's width and height) the exact figure; without, the largest side of
    any aspect's area (enough whatever the subject's shape).
    """
    need = 0
    for aspect in aspects:
        if subject is None:
            left, top, right, bottom = subject_area(aspect, width)
            need = max(need, right - left, bottom - top)
        else:
            need = max(need, max(place(subject, aspect, width).size))
    return need


def compose(
    subject: Image.Image, backdrop: Image.Image, aspect: str, width: int = WIDTH
) -> Image.Image:
    """The RGB studio shot of `subject` (RGBA cut-out) on `backdrop` in the `aspect` frame.

    The cut-out is cropped to its box and decontaminated once per subject image (the next
    aspects of the same image reuse it): do not change a subject image between calls.
    """
    cut = _prepared(subject)
    placement = place(cut.size, aspect, width)
    placed = _snapped(cut, placement, aspect, width)
    if placed.size != placement.size:
        placement = centred(placed.size, aspect, width)
    frame = _fit(backdrop, placement.frame)
    placed = match_colours(placed, _mean_colour(frame, placement.box))
    _cast_shadow(frame, placed.getchannel("A"), placement)
    frame.paste(placed, placement.origin, placed)
    return frame


# Images are unhashable (they compare by content): kept by identity, dropped with the image.
_PREPARED: dict[int, tuple[weakref.ref[Image.Image], Image.Image]] = {}
_PREPARED_LOCK = threading.Lock()


def _prepared(subject: Image.Image) -> Image.Image:
    """The subject cropped to its box and defringed at its own resolution (where a matte's
    contamination is a pixel or two wide), computed once per subject image."""
    key = id(subject)
    with _PREPARED_LOCK:
        held = _PREPARED.get(key)
    if held is not None and held[0]() is subject:
        return held[1]
    found = defringe(subject.convert("RGBA").crop(subject_box(subject)), fill=_KERNEL)
    with _PREPARED_LOCK:
        _PREPARED[key] = (weakref.ref(subject), found)
    weakref.finalize(subject, _forget, key)
    return found


def _forget(key: int) -> None:
    with _PREPARED_LOCK:
        _PREPARED.pop(key, None)


def _snapped(cut: Image.Image, placement: Placement, aspect: str, width: int) -> Image.Image:
    """The cut-out as it is when its size is a pixel or two off the placement's (the rounding
    of an upscale made for this frame): no resampling, no softening. A pixel or two of the
    box's faint outer fringe is trimmed where it would reach into the margin."""
    off = [a - b for a, b in zip(cut.size, placement.size, strict=True)]
    if not all(abs(d) <= _SNAP for d in off):
        return _resized(cut, placement.size)
    left, top, right, bottom = subject_area(aspect, width)
    trim_x, trim_y = max(0, cut.width - (right - left)), max(0, cut.height - (bottom - top))
    if trim_x or trim_y:
        x, y = trim_x // 2, trim_y // 2
        cut = cut.crop((x, y, cut.width - (trim_x - x), cut.height - (trim_y - y)))
    return cut


def _resized(cut: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The prepared cut-out at `size`, colour and alpha resampled apart.

    Every pixel near the subject already carries the subject's colour (see `_prepared`), so
    straight colour is safe to resample; premultiplied colour would be divided by the tiny
    alphas of the edge after resampling, and a kernel's overshoot would light the edge up.
    """
    if size == cut.size:
        return cut
    # Bicubic with Pillow's antialiasing (as sharp as Lanczos to the eye here, and twice as
    # fast); a large reduction first averages whole blocks (`reducing_gap`).
    method, gap = Image.Resampling.BICUBIC, 2.0
    colour = cut.convert("RGB").resize(size, method, reducing_gap=gap)
    colour.putalpha(cut.getchannel("A").resize(size, method, reducing_gap=gap))
    return colour


def _fit(backdrop: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The backdrop covering the frame, centre-cropped; no resampling when it already fits."""
    rgb = backdrop.convert("RGB")
    width, height = size
    fits_width = rgb.width == width and rgb.height >= height
    fits_height = rgb.height == height and rgb.width >= width
    if fits_width or fits_height:
        left, top = (rgb.width - width) // 2, (rgb.height - height) // 2
        return rgb.crop((left, top, left + width, top + height))
    return ImageOps.fit(rgb, size, Image.Resampling.LANCZOS)


def _spread(
    seed: Image.Image,
    factor: int,
    radius: float,
    ys: npt.NDArray[np.intp],
    xs: npt.NDArray[np.intp],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The interior's colours carried outward, read at the pixels (`ys`, `xs`): premultiplied
    `seed` averaged over about `radius` × `factor` pixels, blurred at 1/`factor` size (cheap).
    Returns the colours and their weights (the share of interior in the average, 0..1)."""
    small = seed.reduce(factor) if factor > 1 else seed
    spread = np.asarray(small.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    rows = np.minimum(ys // factor, spread.shape[0] - 1)
    cols = np.minimum(xs // factor, spread.shape[1] - 1)
    found = spread[rows, cols]
    weight = found[:, 3] / 255.0
    colour = found[:, :3] / np.maximum(weight, 1e-6)[:, None]
    return np.clip(colour, 0, 255), weight


def defringe(rgba: Image.Image, *, fill: int = 0) -> Image.Image:
    """The cut-out with the colours of its edge band taken from the interior next to it.

    The alpha is kept as it is; only the colour of pixels that are partly transparent, or
    within `_EDGE` pixels of transparency, changes. With `fill`, fully transparent pixels
    within `fill` pixels of the subject take its colours too: what a resampling kernel or a
    model that sees colour only will read around the subject.
    """
    alpha = rgba.getchannel("A")
    # Interior: every pixel of the (2 _EDGE + 1)² square around it is (nearly) opaque.
    inner = alpha.filter(ImageFilter.BoxBlur(_EDGE)).point(lambda a: 255 if a >= 250 else 0)
    if inner.getbbox() is None:
        return rgba  # a wisp with no solid interior: nothing to take the colour from
    reach = alpha.filter(ImageFilter.BoxBlur(fill)) if fill else alpha
    pixels = np.array(rgba)
    band = (np.asarray(inner) == 0) & (np.asarray(reach) > 0)
    ys, xs = np.nonzero(band)
    if not len(ys):
        return rgba
    seed = rgba.copy()
    seed.putalpha(inner)
    seed = seed.convert("RGBa")
    # Near: about 4 pixels around; far: about 36 (past Real-ESRGAN's receptive field).
    tiny = min(seed.size) < 32
    near, near_weight = _spread(seed, 1 if tiny else 2, 3.0 if tiny else 1.5, ys, xs)
    far, far_weight = _spread(seed, 1 if tiny else 4, 12.0 if tiny else 3.0, ys, xs)
    # The nearer estimate where the interior is close enough to be trusted, else the wider one,
    # else (far from any interior: only a wide `fill` gets there) the interior's mean colour.
    if fill:
        solid = ImageStat.Stat(rgba.convert("RGB"), mask=inner).mean
        colour = np.broadcast_to(np.asarray(solid, dtype=np.float32), (len(ys), 3))
    else:
        colour = pixels[ys, xs, :3].astype(np.float32)
    colour = np.where((far_weight >= 0.01)[:, None], far, colour)
    colour = np.where((near_weight >= 0.1)[:, None], near, colour)
    pixels[ys, xs, :3] = (colour + 0.5).astype(np.uint8)
    return Image.fromarray(pixels, "RGBA")


def match_colours(rgba: Image.Image, ambient: tuple[float, float, float]) -> Image.Image:
    """The subject with a little of the backdrop's colour cast (`COLOUR_MATCH` of it)."""
    mean = sum(ambient) / 3
    if mean <= 0:
        return rgba
    gains = [1 + COLOUR_MATCH * (channel / mean - 1) for channel in ambient]
    tables: list[int] = []
    for gain in gains:
        tables += [min(255, round(i * gain)) for i in range(256)]
    tables += list(range(256))
    return rgba.point(tables)


def _mean_colour(frame: Image.Image, box: Box) -> tuple[float, float, float]:
    """The backdrop's mean colour around where the subject goes (its light falls on it)."""
    left, top, right, bottom = box
    pad_w, pad_h = (right - left) // 2, (bottom - top) // 4
    around = frame.crop(
        (
            max(0, left - pad_w),
            max(0, top - pad_h),
            min(frame.width, right + pad_w),
            min(frame.height, bottom + pad_h),
        )
    )
    around.thumbnail((64, 64), Image.Resampling.BOX)
    r, g, b = (float(v) for v in np.asarray(around, dtype=np.float32).reshape(-1, 3).mean(axis=0))
    return r, g, b


def _cast_shadow(frame: Image.Image, alpha: Image.Image, placement: Placement) -> None:
    """Darken `frame` under the subject where it meets the floor: a soft flattened pool and a
    thin darker contact line, as wide as the columns whose lowest pixel is on (or near) the
    box's bottom edge; a sleeve that ends higher up casts nothing there."""
    width, height = placement.size
    x, y = placement.origin
    base_h = max(1, height // 4)
    base = np.asarray(alpha.crop((0, height - base_h, width, height))) > 128
    # Rows between each column's lowest solid pixel and the bottom edge (base_h: none).
    gap = np.where(base.any(axis=0), np.argmax(base[::-1], axis=0), base_h)
    touch = np.clip(1.0 - gap / max(1.0, 0.06 * height), 0.0, 1.0).astype(np.float32)
    if not touch.any():
        return
    flat_h = max(3, round(height * 0.07))
    blur = max(2.0, placement.frame[0] * 0.018)
    pad = math.ceil(blur * 3)
    rows = np.linspace(-1.0, 1.0, flat_h, dtype=np.float32)
    pool = np.zeros((flat_h + 2 * pad, width + 2 * pad), dtype=np.float32)
    pool[pad : pad + flat_h, pad : pad + width] = np.outer(1.0 - rows**2, touch)
    line = np.zeros_like(pool)
    middle = pad + flat_h // 2
    line[middle - 1 : middle + 1, pad : pad + width] = touch
    mask = np.maximum(
        _blurred(pool, blur) * SHADOW_OPACITY,
        _blurred(line, max(1.0, blur / 4)) * min(1.0, SHADOW_OPACITY * 1.6),
    )
    shadow = Image.fromarray((np.clip(mask, 0.0, 1.0) * 255).astype(np.uint8), "L")
    # The pool's middle lies on the subject's bottom edge.
    where = (x - pad, y + height - flat_h // 2 - pad)
    frame.paste(Image.new("RGB", shadow.size, (0, 0, 0)), where, shadow)


def _blurred(weights: npt.NDArray[np.float32], radius: float) -> npt.NDArray[np.float32]:
    """A Gaussian blur of a 0..1 array (through Pillow's 8-bit one: enough for a shadow)."""
    image = Image.fromarray((weights * 255).astype(np.uint8), "L")
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    return blurred / 255.0

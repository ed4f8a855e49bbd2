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
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

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
    origin = (left + (area_w - size[0]) // 2, top + (area_h - size[1]) // 2)
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
    """The RGB studio shot of `subject` (RGBA cut-out) on `backdrop` in the `aspect` frame."""
    box = subject_box(subject)
    cut = subject.convert("RGBA").crop(box)
    placement = place(cut.size, aspect, width)
    frame = ImageOps.fit(backdrop.convert("RGB"), placement.frame, Image.Resampling.LANCZOS)
    placed = (
        cut.resize(placement.size, Image.Resampling.LANCZOS) if cut.size != placement.size else cut
    )
    placed = defringe(placed)
    placed = match_colours(placed, _mean_colour(frame, placement.box))
    _cast_shadow(frame, placed.getchannel("A"), placement)
    frame.paste(placed, placement.origin, placed)
    return frame


def defringe(rgba: Image.Image, *, fill_transparent: bool = False) -> Image.Image:
    """The cut-out with the colours of its edge band taken from the interior next to it.

    The alpha is kept as it is; only the colour of pixels that are partly transparent, or
    within `_EDGE` pixels of transparency, changes. With `fill_transparent`, fully transparent
    pixels near the subject take its colours too (what a model that sees colour only needs).
    """
    alpha = rgba.getchannel("A")
    # Interior: every pixel of the (2 _EDGE + 1)² square around it is (nearly) opaque.
    inner = alpha.filter(ImageFilter.BoxBlur(_EDGE)).point(lambda a: 255 if a >= 250 else 0)
    if inner.getbbox() is None:
        return rgba  # a wisp with no solid interior: nothing to take the colour from
    seed = rgba.copy()
    seed.putalpha(inner)
    seed = seed.convert("RGBa")
    near = np.asarray(seed.filter(ImageFilter.GaussianBlur(3)).convert("RGBA"))
    far = np.asarray(seed.filter(ImageFilter.GaussianBlur(12)).convert("RGBA"))
    pixels = np.array(rgba)
    a = pixels[..., 3]
    band = ((a > 0) | fill_transparent) & (np.asarray(inner) == 0)
    # The nearer estimate where the interior is close enough to be trusted, else the wider one.
    use_near = band & (near[..., 3] >= 24)
    use_far = band & ~use_near & (far[..., 3] >= 2)
    pixels[..., :3][use_near] = near[..., :3][use_near]
    pixels[..., :3][use_far] = far[..., :3][use_far]
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
    """Darken `frame` under the subject: its base's silhouette, flattened and blurred."""
    width, height = placement.size
    x, y = placement.origin
    base_h = max(1, height // 4)
    base = alpha.crop((0, height - base_h, width, height))
    flat_h = max(2, round(height * 0.05))
    blur = max(2.0, placement.frame[0] * 0.012)
    pad = math.ceil(blur * 3)
    soft = Image.new("L", (width + 2 * pad, flat_h + 2 * pad))
    soft.paste(base.resize((width, flat_h), Image.Resampling.BOX), (pad, pad))
    soft = soft.filter(ImageFilter.GaussianBlur(blur))
    # A thin, darker band where the subject meets the floor.
    contact_h = max(1, flat_h // 3)
    contact = Image.new("L", soft.size)
    contact.paste(
        base.resize((width, contact_h), Image.Resampling.BOX), (pad, pad + flat_h - contact_h)
    )
    contact = contact.filter(ImageFilter.GaussianBlur(max(1.0, blur / 4)))
    mask = np.maximum(
        np.asarray(soft, dtype=np.float32) * SHADOW_OPACITY,
        np.asarray(contact, dtype=np.float32) * min(1.0, SHADOW_OPACITY * 1.5),
    )
    shadow = Image.fromarray(np.clip(mask, 0, 255).astype(np.uint8), "L")
    # The flattened base's middle sits on the subject's bottom edge.
    where = (x - pad, y + height - flat_h // 2 - pad)
    dark = Image.new("RGB", shadow.size, (0, 0, 0))
    frame.paste(dark, where, shadow)

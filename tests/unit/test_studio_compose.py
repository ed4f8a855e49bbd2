"""Composition of studio shots: placement with the margin, the contact shadow, no halo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from common.errors import NoSubjectFound
from common.studio import (
    ASPECTS,
    MARGIN,
    MARGIN_BOTTOM,
    compose,
    frame_size,
    palette,
    place,
    required_subject_size,
    subject_box,
    trimmed,
)


def dress(
    size: tuple[int, int] = (300, 500), colour: tuple[int, int, int] = (170, 30, 40)
) -> Image.Image:
    """A red dress-like cut-out: a trapezoid with transparent space around it."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    w, h = size
    ImageDraw.Draw(image).polygon(
        [(w * 0.35, h * 0.1), (w * 0.65, h * 0.1), (w * 0.85, h * 0.9), (w * 0.15, h * 0.9)],
        fill=(*colour, 255),
    )
    return image


def contaminated_disc(size: int = 240, ring: int = 4) -> Image.Image:
    """A dark red disc cut from a white background: its soft edge still carries the white."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(xx - size / 2, yy - size / 2)
    radius = size * 0.4
    alpha = np.clip((radius - r) / ring, 0, 1)  # a ramp `ring` pixels wide
    # The matting left the old background in the edge band: colour = mix of red and white.
    white = np.clip((r - (radius - ring - 2)) / (ring + 2), 0, 1)[..., None]
    red = np.array([120, 10, 20], dtype=np.float32)
    rgb = red * (1 - white) + 255 * white
    pixels = np.dstack([rgb, alpha * 255]).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGBA")


def luminance(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def grey(value: int, size: tuple[int, int] = (1080, 1920)) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


@pytest.mark.parametrize("aspect", list(ASPECTS))
@pytest.mark.parametrize("size", [(300, 500), (900, 200), (40, 40), (1200, 1200)])
def test_the_subject_lies_wholly_inside_every_frame_with_the_margin(
    aspect: str, size: tuple[int, int]
) -> None:
    subject = dress(size, colour=(0, 0, 0))
    backdrop = grey(255)

    shot = compose(subject, backdrop, aspect)

    width, height = frame_size(aspect)
    assert shot.size == (width, height) and shot.mode == "RGB"
    assert width == 1080 and height == 1080 * ASPECTS[aspect][1] // ASPECTS[aspect][0]
    # The subject is black on white: its pixels are the dark ones far from the shadow's grey.
    dark = np.argwhere(np.asarray(shot.convert("L")) < 60)
    top, left = dark.min(axis=0)
    bottom, right = dark.max(axis=0)
    side, below = MARGIN * width, MARGIN_BOTTOM * width
    assert left >= side - 1 and top >= side - 1
    assert right <= width - side and bottom <= height - below
    # As large as the area lets it be: it touches the area on one axis (within rounding).
    gaps = (left - side, width - side - right, top - side, height - below - bottom)
    assert min(abs(gaps[0] + gaps[1]), abs(gaps[2] + gaps[3])) <= 0.3 * width


def test_the_shadow_lies_under_the_subject_and_nowhere_else() -> None:
    subject = dress()
    backdrop = grey(230)

    shot = np.asarray(compose(subject, backdrop, "4:5"), dtype=np.float32)

    placement = place(_box_size(subject), "4:5")
    left, top, right, bottom = placement.box
    darker = 230 - luminance(shot)
    below_subject = darker[bottom + 2 : bottom + 40, left + 40 : right - 40]
    above_subject = darker[max(0, top - 60) : top - 2, :]
    beside = darker[top : bottom - 80, : max(1, left - 10)]
    assert below_subject.max() > 25  # a visible shadow right under the base
    assert above_subject.max() <= 3 and beside.max() <= 3  # none above or beside (dither only)


def test_only_what_touches_the_floor_casts_the_contact_shadow() -> None:
    # A body standing on the bottom edge and a sleeve beside it that ends well above it.
    subject = Image.new("RGBA", (400, 500), (0, 0, 0, 0))
    draw = ImageDraw.Draw(subject)
    draw.rectangle((150, 0, 399, 499), fill=(40, 60, 150, 255))
    draw.rectangle((0, 50, 149, 420), fill=(40, 60, 150, 255))  # in the bottom quarter

    shot = np.asarray(compose(subject, grey(230), "1:1"), dtype=np.float32)

    left, _, right, bottom = place(_box_size(subject), "1:1").box
    sleeve_right = left + (right - left) * 150 // 400
    darker = 230 - luminance(shot)
    under_body = darker[bottom + 2 : bottom + 30, sleeve_right + 40 : right - 40]
    under_sleeve = darker[bottom + 2 : bottom + 30, left : sleeve_right - 40]
    assert under_body.max() > 25
    assert under_sleeve.max() <= 3


def _box_size(image: Image.Image) -> tuple[int, int]:
    left, top, right, bottom = subject_box(image)
    return right - left, bottom - top


def test_no_light_halo_at_the_cut_outs_edge_on_a_dark_backdrop() -> None:
    subject = contaminated_disc()
    backdrop = grey(12)

    shot = np.asarray(compose(subject, backdrop, "1:1"), dtype=np.float32)
    naive = np.asarray(grey(12, (1080, 1080)), dtype=np.uint8).copy()
    # The same placement without decontamination, for the measure to mean something.
    placement = place(_box_size(subject), "1:1")
    cut = subject.crop(subject_box(subject)).resize(placement.size, Image.Resampling.LANCZOS)
    plain = Image.fromarray(naive)
    plain.paste(cut, placement.origin, cut)

    left, top, right, bottom = placement.box
    edge = _edge_ring(placement.size, width=6)
    ours = luminance(shot[top:bottom, left:right])[edge]
    theirs = luminance(np.asarray(plain, dtype=np.float32)[top:bottom, left:right])[edge]
    interior = luminance(np.asarray([[[120, 10, 20]]], dtype=np.float32)).item()
    # The naive paste shows the halo: edge pixels brighter than both the subject and backdrop.
    assert theirs.max() > interior + 40
    # Decontaminated, no edge pixel is brighter than the subject's own colour (plus rounding).
    assert ours.max() <= interior * 1.15 + 4


def _edge_ring(size: tuple[int, int], width: int) -> np.ndarray:
    """Pixels within `width` of the disc's edge, in the placed box's coordinates."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - w / 2, yy - h / 2)
    radius = min(w, h) / 2
    return np.abs(r - radius) <= width


def test_colours_lean_toward_the_backdrop_but_only_a_little() -> None:
    subject = dress(colour=(128, 128, 128))
    warm = Image.new("RGB", (1080, 1080), (250, 200, 150))

    shot = np.asarray(compose(subject, warm, "1:1"), dtype=np.int32)

    left, top, right, bottom = place(_box_size(subject), "1:1").box
    centre = shot[(top + bottom) // 2, (left + right) // 2]
    assert centre[0] > centre[2]  # warmer than the grey it was
    assert abs(int(centre[0]) - 128) <= 20 and abs(int(centre[2]) - 128) <= 20  # subtly


def test_required_subject_size_is_what_the_largest_frame_needs() -> None:
    tall = required_subject_size(["1:1", "9:16"], subject=(300, 500))
    wide = required_subject_size(["1:1", "9:16"], subject=(900, 200))

    assert tall == max(place((300, 500), "9:16").size)
    assert wide == max(place((900, 200), "1:1").size, place((900, 200), "9:16").size)[0]
    # Without the subject's shape: enough for any shape.
    assert required_subject_size(list(ASPECTS)) >= max(tall, wide)
    assert required_subject_size(["1:1"], width=540) < required_subject_size(["1:1"])


def test_subject_box_ignores_faint_matting_noise_and_an_empty_cut_out_is_coded() -> None:
    image = dress()
    image.putpixel((2, 2), (255, 255, 255, 10))

    left, top, right, bottom = subject_box(image)

    assert left > 2 and top > 2 and right <= 300 and bottom <= 500
    with pytest.raises(NoSubjectFound):
        subject_box(Image.new("RGBA", (50, 50)))


def test_palette_names_the_subjects_colours_most_prominent_first() -> None:
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 99, 69), fill=(20, 40, 200, 255))
    draw.rectangle((0, 70, 99, 99), fill=(240, 200, 20, 255))

    found = palette(image, 2)

    assert len(found) == 2
    assert found[0][2] > 150 and found[0][0] < 60  # the blue, the larger part
    assert found[1][0] > 200 and found[1][2] < 60  # then the yellow
    assert palette(Image.new("RGBA", (10, 10)), 3) == ()


def test_trimming_drops_only_the_wholly_transparent_border() -> None:
    cutout = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    ImageDraw.Draw(cutout).ellipse((100, 50, 220, 250), fill=(200, 30, 40, 255))
    cutout.putpixel((60, 40), (10, 10, 10, 8))  # matting noise: kept, it is not transparent
    left, top, right, bottom = subject_box(cutout)

    kept = trimmed(cutout)

    assert kept.size == (220 - 60 + 1, 250 - 40 + 1)
    assert subject_box(kept) == (left - 60, top - 40, right - 60, bottom - 40)
    assert np.array_equal(np.asarray(kept), np.asarray(cutout.crop((60, 40, 221, 251))))
    whole = Image.new("RGBA", (50, 40), (1, 2, 3, 255))
    assert trimmed(whole) is whole

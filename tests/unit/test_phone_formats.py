"""Phone photos: HEIC/HEIF (iPhones) and AVIF (many Android phones) go through ingest's checks
like every other format: magic bytes, the pixel count from the header before any decoding, the
EXIF orientation and the colour profile. AVIF is also an output format."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from common import imaging
from common.config import Settings
from common.errors import PermanentError, TooManyPixels, UnsupportedFormat
from tests import badinputs

FORMATS = {"heic": "HEIF", "avif": "AVIF"}
LIMITS = {
    "allowed_formats": ("jpeg", "png", "webp", "gif", "heic", "avif"),
    "max_bytes": 25 * 1024 * 1024,
    "max_pixels": 64_000_000,
    "min_side": 32,
    "working_size": 1024,
}


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=FORMATS.get(fmt, fmt.upper()), quality=90, **params)
    return buffer.getvalue()


def swapped_primaries_profile() -> bytes:
    """sRGB's profile with its red and green primaries exchanged: a valid RGB profile under
    which stored red means green, so applying it (or not) shows in the pixels."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    entries = {}
    for i in range(count):
        at = 132 + 12 * i
        signature = bytes(profile[at : at + 4])
        entries[signature] = at
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    profile[red + 4 : red + 12], profile[green + 4 : green + 12] = (
        profile[green + 4 : green + 12],
        profile[red + 4 : red + 12],
    )
    profile[84:100] = bytes(16)  # the profile id (an MD5 of the content) no longer holds
    return bytes(profile)


def rotated_photo(fmt: str) -> bytes:
    """Stored landscape 640x480 with EXIF orientation 6: displays as portrait 480x640."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(badinputs.garment_photo(640, 480), fmt, exif=exif.tobytes())


@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_magic_bytes_name_the_format(fmt):
    data = encoded(badinputs.garment_photo(), fmt)

    assert data[4:8] == b"ftyp"
    assert imaging.sniff_format(data) == fmt
    assert imaging.content_type_of(data) == {"heic": "image/heic", "avif": "image/avif"}[fmt]


def test_a_heif_whose_major_brand_is_generic_is_named_by_its_compatible_brands():
    heic = encoded(badinputs.garment_photo(), "heic")
    size = struct.unpack(">I", heic[:4])[0]
    generic = heic[:8] + b"mif1" + heic[12:size]  # same box, major brand mif1, heic compatible

    assert imaging.sniff_format(generic + heic[size:]) == "heic"
    # An image sequence or anything else in an ISO box is not taken for a photo.
    with pytest.raises(UnsupportedFormat):
        imaging.sniff_format(b"\x00\x00\x00\x14ftypisom\x00\x00\x00\x00isom")


@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_the_exif_orientation_is_applied_once(fmt):
    expected = np.asarray(badinputs.garment_photo(640, 480).transpose(Image.Transpose.ROTATE_270))

    decoded = imaging.decode(rotated_photo(fmt), **LIMITS)

    assert decoded.format == fmt
    assert decoded.image.size == (480, 640)
    assert decoded.original_size == (480, 640)
    difference = np.abs(np.asarray(decoded.image).astype(int) - expected.astype(int))
    assert difference.mean() < 6


@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_the_pixel_limit_is_read_from_the_header_before_decoding(fmt, monkeypatch):
    data = encoded(badinputs.garment_photo(640, 480), fmt)

    def never(self: object) -> None:
        raise AssertionError("pixels decoded before the pixel limit was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    monkeypatch.setattr(Image.Image, "load", never)
    with pytest.raises(TooManyPixels, match="640x480"):
        imaging.decode(data, **{**LIMITS, "max_pixels": 640 * 480 - 1})


@pytest.mark.parametrize("fmt", ["heic", "avif", "jpeg", "png", "webp"])
def test_the_colour_profile_is_applied(fmt):
    red = Image.new("RGB", (64, 64), (220, 20, 20))
    data = encoded(red, fmt, icc_profile=swapped_primaries_profile())

    r, g, b = imaging.decode(data, **LIMITS).image.getpixel((32, 32))

    # Stored red under a profile whose "red" primary is green: green on screen, and in sRGB.
    assert g > 150 and r < 120, (r, g, b)


@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_an_srgb_photo_keeps_its_colours(fmt):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encoded(Image.new("RGB", (64, 64), (220, 20, 20)), fmt, icc_profile=srgb)

    r, g, b = imaging.decode(data, **LIMITS).image.getpixel((32, 32))

    assert abs(r - 220) < 12 and g < 40 and b < 40


@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_a_phone_format_outside_the_allow_list_is_refused(fmt):
    data = encoded(badinputs.garment_photo(), fmt)

    with pytest.raises(UnsupportedFormat):
        imaging.decode(data, **{**LIMITS, "allowed_formats": ("jpeg", "png")})


@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_damaged_phone_photos_are_bad_input(fmt):
    data = encoded(badinputs.garment_photo(), fmt)

    for cut in (len(data) // 3, len(data) // 2, len(data) - 10):
        with pytest.raises(PermanentError):
            imaging.decode(data[:cut], **LIMITS)


def test_phone_formats_are_accepted_by_default_and_avif_is_an_output():
    settings = Settings.from_env({"CLOSET_OUTPUT_FORMAT": "avif"})
    image = Image.new("RGBA", (64, 32), (10, 200, 30, 128))

    data = imaging.encode(image, settings.output_format, quality=settings.output_quality)

    assert {"heic", "avif"} <= set(Settings.from_env({}).allowed_formats)
    assert imaging.sniff_format(data) == "avif"
    assert imaging.CONTENT_TYPES["avif"] == "image/avif"
    back = Image.open(io.BytesIO(data))
    assert back.size == (64, 32) and back.mode == "RGBA"

"""The bad-input set, generated: each case with the outcome the pipeline must reach."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


def garment_photo(width: int = 640, height: int = 480, mode: str = "RGB") -> Image.Image:
    """A red T-shirt shape on a light grey studio background."""
    image = Image.new("RGB", (width, height), (236, 236, 232))
    draw = ImageDraw.Draw(image)
    w, h = width, height
    shirt = [
        (0.35 * w, 0.2 * h),
        (0.65 * w, 0.2 * h),
        (0.82 * w, 0.32 * h),
        (0.75 * w, 0.42 * h),
        (0.66 * w, 0.37 * h),
        (0.66 * w, 0.82 * h),
        (0.34 * w, 0.82 * h),
        (0.34 * w, 0.37 * h),
        (0.25 * w, 0.42 * h),
        (0.18 * w, 0.32 * h),
    ]
    draw.polygon(shirt, fill=(178, 34, 52))
    return image.convert(mode) if mode != "RGB" else image


def _jpeg(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **params)
    return buffer.getvalue()


def _png(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image, followed by a few bytes of data (a bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    data = _jpeg(garment_photo())
    return data[: len(data) // 3]


def eps() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
        b"newpath 10 10 moveto 90 90 lineto stroke showpage\n%%EOF\n"
    )


def cmyk_jpeg() -> bytes:
    return _jpeg(garment_photo().convert("CMYK"))


def png16() -> bytes:
    gray = np.asarray(garment_photo().convert("L"), dtype=np.uint16) * 257
    return _png(Image.fromarray(gray))


def palette_with_transparency() -> bytes:
    rgb = garment_photo()
    palette = rgb.quantize(colors=8)
    # Make the background's palette entry transparent, as a sticker-style PNG would.
    background_index = palette.getpixel((0, 0))
    return _png(palette, transparency=background_index)


def animated_gif() -> bytes:
    frames = [garment_photo(), garment_photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def one_pixel() -> bytes:
    return _png(Image.new("RGB", (1, 1), (200, 10, 10)))


def exif_rotated_jpeg() -> bytes:
    """Stored landscape 640x480, EXIF orientation 6: displays as portrait 480x640."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(garment_photo(640, 480), exif=exif.tobytes())


@dataclass(frozen=True)
class BadInput:
    name: str
    filename: str
    data: bytes
    code: str | None
    """The documented error code, or None when the pipeline must complete the job."""


def gray_png_with_transparency(bit_depth: int = 1, trns: bytes = b"\x00\x00") -> bytes:
    """A grayscale PNG (1-bit by default) whose tRNS chunk names a transparent gray level: the
    exotic file that once made a colour conversion raise ValueError (taken for transient)."""
    width, height = 96, 72
    row = (width * bit_depth + 7) // 8
    pixels = b"".join(
        b"\x00"
        + bytes(0xFF if 20 <= y < 52 and 24 <= x * 8 // bit_depth < 72 else 0 for x in range(row))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"tRNS", trns)
        + _chunk(b"IDAT", zlib.compress(pixels))
        + _chunk(b"IEND", b"")
    )


def bad_inputs() -> list[BadInput]:
    return [
        BadInput("empty", "empty.jpg", b"", "invalid_image"),
        BadInput("truncated-jpeg", "truncated.jpg", truncated_jpeg(), "invalid_image"),
        BadInput("text-as-jpeg", "notes.jpg", b"this is not a photo\n" * 20, "invalid_image"),
        BadInput("png-50000x50000", "bomb.png", png_claiming(50000, 50000), "too_many_pixels"),
        BadInput("eps", "drawing.jpg", eps(), "unsupported_format"),
        BadInput("one-pixel", "dot.png", one_pixel(), "image_too_small"),
        BadInput("cmyk-jpeg", "cmyk.jpg", cmyk_jpeg(), None),
        BadInput("png-16-bit", "deep.png", png16(), None),
        BadInput("palette-transparency", "sticker.png", palette_with_transparency(), None),
        BadInput("animated-gif", "anim.gif", animated_gif(), None),
        BadInput("exif-rotated-jpeg", "rotated.jpg", exif_rotated_jpeg(), None),
        BadInput("gray-1-bit-transparency", "bits.png", gray_png_with_transparency(), None),
        BadInput(
            "gray-transparency-garbled",
            "garbled.png",
            gray_png_with_transparency(8, b"\x07"),
            "invalid_image",
        ),
    ]

"""Decoding uploads safely and encoding outputs: the only module that opens image bytes."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, UnidentifiedImageError, features

from common.errors import (
    ClosetError,
    ImageTooLarge,
    ImageTooSmall,
    InvalidImage,
    TooManyPixels,
    TransientError,
    UnsupportedFormat,
)

if TYPE_CHECKING:
    from common.ports import BlobStore

# HEIC/HEIF through libheif (pillow-heif); AVIF is Pillow's own (wheels built with libavif).
pillow_heif.register_heif_opener()
if not features.check("avif"):  # pragma: no cover - depends on how Pillow was built
    raise ImportError("this Pillow cannot read AVIF: install Pillow 11.3+ wheels (with libavif)")

# Pillow plugin names for the formats we accept. Opening with `formats=` keeps every other
# plugin (EPS through Ghostscript above all) out of reach, whatever the bytes claim to be.
PIL_FORMATS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "heic": "HEIF",
    "avif": "AVIF",
}

CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "avif": "image/avif",
}

EXTENSIONS = {
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "gif": "gif",
    "heic": "heic",
    "avif": "avif",
}

# Other names browsers and phones give the same formats.
_CONTENT_TYPE_ALIASES = {"image/jpg": "jpeg", "image/pjpeg": "jpeg", "image/heif": "heic"}


def format_of_content_type(content_type: str) -> str | None:
    """The format a declared content type names (`image/jpeg` → `jpeg`), None if no image."""
    wanted = content_type.split(";")[0].strip().lower()
    for fmt, known in CONTENT_TYPES.items():
        if known == wanted:
            return fmt
    return _CONTENT_TYPE_ALIASES.get(wanted)


# Recognised but refused: a clear `unsupported_format` beats a vague `invalid_image`.
_KNOWN_UNSUPPORTED: tuple[tuple[bytes, int, str], ...] = (
    (b"%!PS", 0, "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", 0, "EPS"),
    (b"%PDF", 0, "PDF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"BM", 0, "BMP"),
    (b"8BPS", 0, "Photoshop"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", 0, "JPEG XL"),
    (b"<svg", 0, "SVG"),
)
# ISO base media brands (the `ftyp` box): AVIF, and HEIF still images coded with HEVC.
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_GENERIC_HEIF = {b"mif1", b"msf1", b"miaf"}


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image
    """RGB, or RGBA when the upload has real transparency; long edge at most the working size."""
    format: str
    original_size: tuple[int, int]
    """Width and height of the upload after EXIF orientation."""
    frames: int


def content_type_of(data: bytes) -> str:
    """The upload's content type by its magic bytes; unknown bytes are for ingest to judge."""
    try:
        return CONTENT_TYPES[sniff_format(data)]
    except ClosetError:
        return "application/octet-stream"


def sniff_format(data: bytes) -> str:
    """The image format named by the magic bytes: jpeg, png, webp or gif; anything else raises."""
    if not data:
        raise InvalidImage("the upload is empty")
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[4:8] == b"ftyp":
        brands = _ftyp_brands(data)
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIC_BRANDS:
            return "heic"
        if brands & _GENERIC_HEIF:
            raise UnsupportedFormat("HEIF images that are not HEVC or AV1 photos are not accepted")
        raise UnsupportedFormat("video and other ISO media files are not accepted; send a photo")
    stripped = data.lstrip()
    for magic, offset, name in _KNOWN_UNSUPPORTED:
        if data[offset:].startswith(magic) or (name == "SVG" and stripped.startswith(b"<?xml")):
            raise UnsupportedFormat(f"{name} files are not accepted; send JPEG, PNG, WebP or GIF")
    raise InvalidImage("the upload is not an image (unrecognised file signature)")


def _ftyp_brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of the leading `ftyp` box."""
    size = int.from_bytes(data[:4], "big")
    box = data[8 : min(max(size, 16), 4096, len(data))]
    major, compatible = box[:4], box[8:]
    return {major} | {compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4)}


def decode(
    data: bytes,
    *,
    allowed_formats: tuple[str, ...],
    max_bytes: int,
    max_pixels: int,
    min_side: int,
    working_size: int,
) -> DecodedImage:
    """Validate and decode an upload straight to working size; bad input raises PermanentError."""
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the upload is {len(data)} bytes; the limit is {max_bytes}")
    fmt = sniff_format(data)
    if fmt not in allowed_formats:
        raise UnsupportedFormat(f"{fmt.upper()} images are not accepted here")
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below, before anything is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[fmt]])
    except Image.DecompressionBombError:
        raise TooManyPixels("the image header claims far more pixels than allowed") from None
    except (ClosetError, MemoryError):
        raise
    except UnidentifiedImageError:
        raise InvalidImage(
            f"the file starts like a {fmt.upper()} but is not a readable one"
        ) from None
    except Exception as exc:
        raise InvalidImage(f"the {fmt.upper()} data cannot be read: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixels(f"the image is {width}x{height}; the limit is {max_pixels} pixels")
    if min(width, height) < min_side:
        raise ImageTooSmall(f"the image is {width}x{height}; each side must be {min_side} or more")

    try:
        if fmt == "jpeg":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: most of the decode cost of a large
            # photo disappears, and the result is still at least the working size.
            scale = working_size / max(width, height)
            if scale < 1:
                image.draft(None, (max(1, int(width * scale)), max(1, int(height * scale))))
        frames = getattr(image, "n_frames", 1)
        # HEIC: libheif applies the container's rotation and pillow-heif resets the tag to 1.
        orientation = image.getexif().get(0x0112, 1)
        profile = image.info.get("icc_profile")
        image.load()
        # Shrink before any mode conversion or rotation, so no full-size copy is ever made.
        small = to_srgb(normalise_mode(shrink(image, working_size)), profile)
        transpose = _ORIENTATIONS.get(orientation)
        if transpose is not None:
            small = small.transpose(transpose)
        original = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        return DecodedImage(fit(small, working_size), fmt, original, frames)
    except (ClosetError, MemoryError):
        raise
    except Exception as exc:
        # Whatever raises while reading, orienting, converting or shrinking (Pillow signals
        # damaged data with IndexError, struct.error, EOFError, ValueError, ...), the upload is
        # what is wrong: permanent, never worth a retry.
        raise InvalidImage(f"the {fmt.upper()} data is damaged: {exc}") from None


_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes Image.reduce() works on; others are converted (after shrinking where possible).
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "I", "F", "CMYK"}  # not P or PA: averaging indices


def shrink(image: Image.Image, max_size: int) -> Image.Image:
    """Cheap integer box reduction to within 2x of `max_size`, in the image's own mode."""
    if image.mode.startswith("I;16"):
        # 16-bit samples: keep the high byte. Integer maths, one 8-bit copy.
        image = Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8))
    factor = max(image.size) // (2 * max_size)
    if factor < 2:
        return image
    if image.mode not in _REDUCIBLE:
        has_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    return image.reduce(factor)


def normalise_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when some pixel is not opaque; handles 16-bit, CMYK, palette and grayscale
    (a transparent colour named by a tRNS chunk included). The result carries no `info`."""
    mode = image.mode
    transparent = "transparency" in image.info
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image)
        if values.max(initial=0) > 255:
            # 16-bit samples in a 32-bit mode: keep the high byte.
            values = np.clip(values, 0, 65535).astype(np.uint32) >> 8
        gray = np.clip(values, 0, 255).astype(np.uint8)
        image = Image.fromarray(gray).convert("RGB")
    elif mode == "P" or (transparent and mode in ("1", "L", "RGB")):
        image = image.convert("RGBA" if transparent else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa", "RGBA"):
        image = image.convert("RGBA")
    elif mode != "RGB":
        image = image.convert("RGB")
    if image.mode == "RGBA":
        alpha_min, _ = image.getchannel("A").getextrema()
        if alpha_min == 255:
            image = image.convert("RGB")
    # Leftovers of the file (a transparency key meant for another mode, an ICC profile for
    # other samples) must not follow the pixels into our own encoders.
    image.info = {}
    return image


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """The pixels in sRGB when the upload names another RGB colour profile (a phone's Display
    P3, Adobe RGB); outputs carry no profile, so browsers show them as sRGB. A profile that
    cannot be read, or that is not for RGB samples (CMYK), is ignored as before."""
    if not profile or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        if source.profile.xcolor_space.strip() != "RGB":
            return image
        intent = ImageCms.Intent.PERCEPTUAL
        converted = ImageCms.profileToProfile(
            image, source, _srgb(), renderingIntent=intent, outputMode=image.mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image
    assert converted is not None
    converted.info = {}
    return converted


def fit(image: Image.Image, max_size: int) -> Image.Image:
    """A copy whose long edge is at most `max_size`, alpha-correct (premultiplied resampling)."""
    width, height = image.size
    scale = max_size / max(width, height)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.mode == "RGBA":
        # Resampling straight RGBA drags the colour of transparent pixels into the edges.
        return image.convert("RGBa").resize(size, Image.Resampling.LANCZOS).convert("RGBA")
    return image.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: str, *, quality: int = 85, webp_method: int = 4) -> bytes:
    """Encode an output image; JPEG has no alpha, so cut-outs are flattened onto white."""
    buffer = io.BytesIO()
    if fmt == "webp":
        image.save(buffer, format="WEBP", quality=quality, method=webp_method)
    elif fmt == "jpeg":
        flat = image
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size, (255, 255, 255))
            flat.paste(image, mask=image.getchannel("A"))
        flat.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    elif fmt == "png":
        image.save(buffer, format="PNG", compress_level=6)
    elif fmt == "avif":
        image.save(buffer, format="AVIF", quality=quality)
    else:
        raise ValueError(f"cannot encode {fmt!r}")
    return buffer.getvalue()


# Work artefacts are read only by the next stage, so they are stored uncompressed: zlib at its
# fastest level (PNG) took 50 to 90 ms for a 1024 px cut-out and 15 to 30 ms to read back, while
# the 2 to 3 times larger file costs a few milliseconds more on the wire (same region, no egress
# charge) and lives one day. TIFF keeps every mode we write (RGB, RGBA unassociated, L) exactly.
WORK_SUFFIX = ".tiff"
WORK_CONTENT_TYPE = "image/tiff"


def encode_work(image: Image.Image) -> bytes:
    """Lossless and fast, for artefacts that only the next stage reads."""
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF", compression="raw")
    return buffer.getvalue()


def write_work(blobs: BlobStore, bucket: str, job_id: str, stem: str, image: Image.Image) -> str:
    """Store a job's intermediate image as `work/{job_id}/{stem}.tiff`; its name is the ref."""
    name = f"work/{job_id}/{stem}{WORK_SUFFIX}"
    blobs.write(bucket, name, encode_work(image), WORK_CONTENT_TYPE)
    return name


def open_remote(data: bytes, *, max_pixels: int = 64_000_000) -> Image.Image:
    """Open an image a remote backend sent back: PNG, WebP or JPEG only, pixels checked first.

    A remote answer is input like any upload: no other Pillow plugin may see it.
    """
    try:
        fmt = sniff_format(data)
        if fmt not in ("png", "webp", "jpeg"):
            raise UnsupportedFormat(f"{fmt.upper()} is not an accepted answer")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[fmt]])
        if image.width * image.height > max_pixels:
            raise TooManyPixels(f"the answer is {image.width}x{image.height} pixels")
        image.load()
    except MemoryError:
        raise
    except Exception as exc:
        # A garbled answer is the remote side's fault; another try may well succeed.
        raise TransientError(f"the backend answered with an unreadable image: {exc}") from None
    return image


def open_work(data: bytes) -> Image.Image:
    """Open an artefact the pipeline itself wrote (PNG: written before the switch to TIFF, by a
    job that was under way while a new version rolled out)."""
    image = Image.open(io.BytesIO(data), formats=["TIFF", "PNG"])
    image.load()
    return image

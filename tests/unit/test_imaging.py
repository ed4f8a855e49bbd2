import io

import numpy as np
import pytest
from PIL import Image

from common import imaging
from common.adapters.folder import FolderBlobStore
from common.errors import (
    ImageTooLarge,
    InvalidImage,
    PermanentError,
    TooManyPixels,
    TransientError,
    UnsupportedFormat,
)
from tests import badinputs

LIMITS = {
    "allowed_formats": ("jpeg", "png", "webp", "gif"),
    "max_bytes": 25 * 1024 * 1024,
    "max_pixels": 64_000_000,
    "min_side": 32,
    "working_size": 1024,
}


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a....", "gif"),
    ],
)
def test_sniff_recognises_allowed_formats_by_magic_bytes(data, expected):
    assert imaging.sniff_format(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"%!PS-Adobe-3.0 EPSF-3.0",
        b"%PDF-1.7",
        b"II*\x00",
        b"BM6\x00",
        b"\x00\x00\x00\x18ftypqt  \x00\x00\x00\x00qt  ",
    ],
)
def test_sniff_names_known_but_refused_formats(data):
    with pytest.raises(UnsupportedFormat):
        imaging.sniff_format(data)


def test_format_outside_the_allow_list_is_refused():
    data = jpeg_bytes(badinputs.garment_photo())

    with pytest.raises(UnsupportedFormat):
        imaging.decode(data, **{**LIMITS, "allowed_formats": ("png",)})


def test_byte_limit_is_checked_before_decoding():
    data = jpeg_bytes(badinputs.garment_photo())

    with pytest.raises(ImageTooLarge):
        imaging.decode(data, **{**LIMITS, "max_bytes": len(data) - 1})


def test_pixel_limit_uses_the_header_not_a_full_decode():
    # 20000 x 20000 is below Pillow's own bomb threshold, so our limit must catch it.
    data = badinputs.png_claiming(20000, 20000)

    with pytest.raises(TooManyPixels):
        imaging.decode(data, **LIMITS)


def test_large_jpeg_is_decoded_straight_to_working_size():
    photo = badinputs.garment_photo(4000, 3000)

    decoded = imaging.decode(jpeg_bytes(photo), **LIMITS)

    assert decoded.image.size == (1024, 768)
    assert decoded.original_size == (4000, 3000)
    assert decoded.image.mode == "RGB"


def test_exif_orientation_is_applied():
    expected = np.asarray(badinputs.garment_photo(640, 480).transpose(Image.Transpose.ROTATE_270))

    decoded = imaging.decode(badinputs.exif_rotated_jpeg(), **LIMITS)

    assert decoded.image.size == (480, 640)
    difference = np.abs(np.asarray(decoded.image).astype(int) - expected.astype(int))
    assert difference.mean() < 3


def test_sixteen_bit_png_keeps_its_tones():
    decoded = imaging.decode(badinputs.png16(), **LIMITS)

    shirt = decoded.image.getpixel((320, 300))
    background = decoded.image.getpixel((5, 5))
    assert decoded.image.mode == "RGB"
    assert isinstance(shirt, tuple) and isinstance(background, tuple)
    assert 60 < shirt[0] < 100 and background[0] > 220


def test_cmyk_jpeg_comes_out_in_rgb_with_its_colours():
    decoded = imaging.decode(badinputs.cmyk_jpeg(), **LIMITS)

    red, green, blue = decoded.image.getpixel((320, 300))  # type: ignore[misc]
    assert decoded.image.mode == "RGB"
    assert red > 140 and green < 80 and blue < 90


def test_palette_transparency_becomes_alpha():
    decoded = imaging.decode(badinputs.palette_with_transparency(), **LIMITS)

    assert decoded.image.mode == "RGBA"
    assert decoded.image.getpixel((2, 2))[3] == 0  # type: ignore[index]
    assert decoded.image.getpixel((320, 300))[3] == 255  # type: ignore[index]


def test_animated_gif_uses_its_first_frame():
    decoded = imaging.decode(badinputs.animated_gif(), **LIMITS)

    assert decoded.frames == 2
    assert decoded.image.size == (640, 480)


def test_truncated_jpeg_is_invalid_not_a_crash():
    with pytest.raises(InvalidImage):
        imaging.decode(badinputs.truncated_jpeg(), **LIMITS)


def test_fit_keeps_transparent_colour_out_of_edges():
    image = Image.new("RGBA", (400, 400), (0, 255, 0, 0))
    image.paste((200, 0, 0, 255), (100, 100, 300, 300))

    small = imaging.fit(image, 100)

    pixels = np.asarray(small).astype(int)
    edge = pixels[(pixels[..., 3] > 0) & (pixels[..., 3] < 255)]
    assert small.size == (100, 100)
    assert edge.size and edge[:, 1].max() < 10


@pytest.mark.parametrize("fmt", ["webp", "jpeg", "png"])
def test_encode_round_trips_each_output_format(fmt):
    image = Image.new("RGBA", (64, 32), (10, 20, 30, 255))

    data = imaging.encode(image, fmt, quality=80)

    assert imaging.sniff_format(data) == fmt
    assert Image.open(io.BytesIO(data)).size == (64, 32)


@pytest.mark.parametrize(
    "make",
    [
        badinputs.animated_gif,
        badinputs.png16,
        badinputs.palette_with_transparency,
        badinputs.cmyk_jpeg,
    ],
    ids=["gif", "png16", "palette", "cmyk-jpeg"],
)
def test_every_truncation_decodes_or_fails_as_bad_input(make):
    data = make()

    outcomes = set()
    for cut in range(0, len(data), max(1, len(data) // 400)):
        try:
            imaging.decode(data[:cut], **LIMITS)
            outcomes.add("decoded")
        except PermanentError as exc:
            outcomes.add(exc.code)

    assert outcomes <= {"decoded", "invalid_image", "image_too_small"}
    assert "invalid_image" in outcomes


def test_large_sixteen_bit_png_is_shrunk_before_conversion():
    gray = (np.arange(4000 * 3000, dtype=np.uint32).reshape(3000, 4000) % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")

    decoded = imaging.decode(buffer.getvalue(), **LIMITS)

    assert decoded.image.size == (1024, 768) and decoded.image.mode == "RGB"


def test_remote_answers_are_opened_only_as_png_webp_or_jpeg():
    with pytest.raises(TransientError):
        imaging.open_remote(badinputs.eps())
    with pytest.raises(TransientError):
        imaging.open_remote(badinputs.animated_gif())

    image = imaging.open_remote(imaging.encode(Image.new("RGBA", (8, 8)), "png"))

    assert image.size == (8, 8)


@pytest.mark.parametrize("mode", ["P", "P-transparent", "LA", "CMYK", "1"])
def test_large_images_of_every_mode_keep_their_colours_when_shrunk(mode):
    # Big enough (4200 px) that decode reduces before converting.
    photo = badinputs.garment_photo(4200, 3150)
    params: dict[str, object] = {}
    if mode.startswith("P"):
        source = photo.quantize(colors=8)
        if mode == "P-transparent":
            params["transparency"] = source.getpixel((0, 0))
    else:
        source = photo.convert(mode)
    buffer = io.BytesIO()
    source.save(buffer, format="JPEG" if mode == "CMYK" else "PNG", **params)

    decoded = imaging.decode(buffer.getvalue(), **{**LIMITS, "max_pixels": 20_000_000})

    assert decoded.image.size == (1024, 768)
    expected = photo.convert(mode).convert("RGB") if mode in ("LA", "1") else photo
    shirt = np.asarray(decoded.image.convert("RGB"))[420, 512].astype(int)
    reference = np.asarray(expected.resize((1024, 768)))[420, 512].astype(int)
    assert np.abs(shirt - reference).max() < 30, (shirt, reference)
    if mode == "P-transparent":
        assert decoded.image.mode == "RGBA" and decoded.image.getpixel((2, 2))[3] == 0


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_work_artefacts_come_back_exactly_as_written(mode):
    rng = np.random.default_rng(7)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, size=(61, 83, channels), dtype=np.uint8)
    if mode == "RGBA":
        pixels[:10, :, 3] = 0  # colour under fully transparent pixels is kept too
    image = Image.fromarray(pixels.squeeze(), mode)
    data = imaging.encode_work(image)
    assert data[:4] in (b"II*\x00", b"MM\x00*")  # uncompressed TIFF: no zlib on the way
    back = imaging.open_work(data)
    assert back.mode == mode
    assert np.array_equal(np.asarray(back), pixels.squeeze())


def test_work_artefacts_written_as_png_by_an_earlier_version_still_open():
    image = Image.fromarray(np.arange(64 * 32, dtype=np.uint8).reshape(32, 64) % 251, "L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert np.array_equal(np.asarray(imaging.open_work(buffer.getvalue())), np.asarray(image))


def test_a_work_image_is_named_by_its_job_and_stem(tmp_path):
    blobs = FolderBlobStore(tmp_path)
    image = Image.new("RGBA", (8, 4), (1, 2, 3, 4))
    name = imaging.write_work(blobs, "work-bucket", "job-1", "cutout", image)
    assert name == "work/job-1/cutout.tiff"
    assert imaging.open_work(blobs.read("work-bucket", name)).getpixel((0, 0)) == (1, 2, 3, 4)

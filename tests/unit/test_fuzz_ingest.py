"""Hostile input is permanent, whatever raises it: mutated JPEG, PNG, WebP and GIF files.

A bounded run is part of `make test`; `make fuzz` runs the same properties with many more
examples (CLOSET_FUZZ_EXAMPLES). Every case must end as a decoded image or a PermanentError
with a documented code: any other exception would be taken for a transient failure and
retried until the dead letter.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import resource
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from common import imaging
from common.backends.lazy import Backends
from common.config import Settings
from common.errors import ERROR_CODES, PermanentError
from common.pipeline import LocalPipeline
from common.schemas import JobStatus
from tests import badinputs

EXAMPLES = int(os.environ.get("CLOSET_FUZZ_EXAMPLES", "300"))
LIMITS = {
    "allowed_formats": ("jpeg", "png", "webp", "gif"),
    "max_bytes": 2_000_000,
    "max_pixels": 4_000_000,
    "min_side": 8,
    "working_size": 256,
}
# Pillow may allocate what a header claims, up to the pixel limit (4 MP here, 16 MB of RGBA).
MEMORY_BOUND_MB = 300


def _seeds() -> dict[str, bytes]:
    photo = badinputs.garment_photo(96, 72)
    seeds: dict[str, bytes] = {}
    exif = Image.Exif()
    exif[0x0112] = 6
    for name, image, params in (
        ("jpeg", photo, {"quality": 80, "exif": exif.tobytes()}),
        ("progressive.jpeg", photo, {"quality": 80, "progressive": True}),
        ("png", photo.convert("RGBA"), {}),
        ("palette.png", photo.convert("P"), {"transparency": 0}),
        ("webp", photo, {"quality": 70}),
        ("lossless.webp", photo.convert("RGBA"), {"lossless": True}),
        ("gif", photo.convert("P"), {"transparency": 0}),
    ):
        buffer = io.BytesIO()
        fmt = name.rsplit(".", 1)[-1].upper().replace("JPG", "JPEG")
        image.save(buffer, format=fmt, **params)
        seeds[name] = buffer.getvalue()
    seeds["animated.gif"] = badinputs.animated_gif()
    seeds["gray-transparency.png"] = badinputs.gray_png_with_transparency()
    seeds["gray8-transparency.png"] = badinputs.gray_png_with_transparency(8, b"\x00\x00")
    return seeds


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed file with flipped bytes, overwritten runs, insertions and truncation."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "run", "insert", "header", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "run":
            run = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(run)] = run
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "header":
            # Size fields live in the first few dozen bytes of every one of these formats.
            spot = draw(st.integers(0, min(63, len(data) - 1)))
            data[spot] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
        elif len(data) > 1:
            del data[draw(st.integers(1, len(data) - 1)) :]
    return bytes(data)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_a_mutated_image_decodes_or_fails_with_a_documented_code(data: bytes) -> None:
    try:
        decoded = imaging.decode(data, **LIMITS)  # type: ignore[arg-type]
    except PermanentError as exc:
        assert exc.code in ERROR_CODES, exc
        return
    assert decoded.image.mode in ("RGB", "RGBA")
    assert max(decoded.image.size) <= LIMITS["working_size"]  # type: ignore[operator]


def test_fuzzing_keeps_memory_bounded() -> None:
    before = _peak_rss_mb()
    rng = random.Random(20261125)
    for _ in range(200):
        data = bytearray(SEEDS[rng.choice(sorted(SEEDS))])
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(min(64, len(data)))] = rng.choice([0x00, 0x7F, 0xFF])
        with contextlib.suppress(PermanentError):
            imaging.decode(bytes(data), **LIMITS)  # type: ignore[arg-type]

    assert _peak_rss_mb() - before < MEMORY_BOUND_MB


def test_mutated_uploads_end_on_the_first_attempt_in_the_pipeline(tmp_path: Path) -> None:
    """Through ingest as a job: done, or failed with a documented code on attempt 1."""
    settings = Settings.from_env({}, local_root=tmp_path / "local", max_attempts=3)
    pipeline = LocalPipeline(
        settings,
        results_dir=tmp_path / "out",
        backends=Backends(settings, generative=None),
        retry_delay_s=0,
        kinds=("closet",),
    )
    rng = random.Random(7)
    for index in range(24):
        data = bytearray(SEEDS[sorted(SEEDS)[index % len(SEEDS)]])
        for _ in range(3):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        job = pipeline.process(bytes(data), f"case-{index}.bin")

        if job.status is JobStatus.FAILED:
            assert job.error is not None and job.error.code in ERROR_CODES
            assert job.error.code != "stage_failed", job.error
            assert job.stages["ingest"].attempts == 1
        else:
            assert job.status is JobStatus.DONE


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_decodes(name: str) -> None:
    decoded = imaging.decode(SEEDS[name], **LIMITS)  # type: ignore[arg-type]

    assert decoded.format in name
    assert decoded.image.info == {}

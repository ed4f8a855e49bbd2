"""The benchmark's upload: a 4000x3000 JPEG of a garment on a studio sweep, about 3 MB."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from common.bench.scenes import NAVY, WHITE_SWEEP, Piece, SceneSpec, render

SPEC = SceneSpec(
    "upload-navy-tshirt",
    "shadow",
    (Piece("tshirt", 0.5, 0.5, 0.72, 0.95, -3.0, NAVY, "stripes"),),
    WHITE_SWEEP,
    gradient=0.08,
    shadow=0.35,
    seed=42,
)


def upload_photo(cache: Path, width: int = 4000, height: int = 3000) -> bytes:
    """The photo's JPEG bytes, rendered once into `cache`."""
    path = cache / f"upload-{width}x{height}.jpg"
    if path.is_file():
        return path.read_bytes()
    # Drawn at a quarter of the size (blurring a 12-megapixel shadow is slow), enlarged, then
    # given its own sensor noise so the file is as large as a camera's.
    small = render(SPEC, width // 4, height // 4).image
    big = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    big += np.random.default_rng(SPEC.seed).normal(0, 4.0, size=big.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(big + 0.5, 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=94
    )
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def unique(jpeg: bytes, n: int) -> bytes:
    """The same picture with a JPEG comment naming `n`: new bytes, so never a cache hit."""
    text = f"closet bench upload {n}".encode()
    comment = b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
    return jpeg[:2] + comment + jpeg[2:]

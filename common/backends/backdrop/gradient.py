"""Procedural backdrops (no model): a white sweep, a pastel wash, or a two-colour gradient from
the subject's own palette, each with a soft light behind the subject and a fine dither so the
8-bit output shows no banding."""

from __future__ import annotations

import math
import zlib
from typing import Self

import numpy as np
import numpy.typing as npt
from PIL import Image

from common.backends.backdrop.base import RGB, BackdropBackend, BackdropRequest
from common.config import Settings

Floats = npt.NDArray[np.float32]

_COARSE = 4
_BILINEAR = Image.Resampling.BILINEAR

NEUTRAL: tuple[RGB, RGB] = ((214, 206, 196), (150, 160, 172))
"""Warm grey to cool grey: the gradient of a subject without a colour of its own."""


def _mix(colour: RGB, toward: RGB, amount: float) -> Floats:
    a = np.asarray(colour, dtype=np.float32)
    return a + (np.asarray(toward, dtype=np.float32) - a) * amount


def _soften(colour: RGB, *, lightness: float, saturation: float) -> Floats:
    """A colour moved toward grey (`saturation` kept) and then toward white (`lightness`)."""
    rgb = np.asarray(colour, dtype=np.float32)
    grey = rgb.mean()
    muted = grey + (rgb - grey) * saturation
    softened: Floats = muted + (255.0 - muted) * lightness
    return softened


def _complement(colour: RGB) -> RGB:
    r, g, b = colour
    high, low = max(colour), min(colour)
    return (high + low - r, high + low - g, high + low - b)


def _ramps(size: tuple[int, int]) -> tuple[Floats, Floats]:
    """Vertical position 0..1 and distance from a light just above the centre, 0..~1."""
    width, height = size
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    aspect = width / max(1, height)
    light = np.sqrt((x * aspect) ** 2 + ((y - 0.42) * 2.0) ** 2) / max(1.0, aspect)
    return np.broadcast_to(y, (height, width)), np.clip(light, 0.0, 1.5)


def _dithered(pixels: Floats, seed: int) -> Image.Image:
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, pixels.shape[:2]).astype(np.float32)
    out = np.clip(pixels + noise[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


class GradientBackdrop(BackdropBackend):
    name = "gradient"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def render(self, request: BackdropRequest) -> Image.Image:
        width, height = request.size
        if width < 1 or height < 1:
            raise ValueError(f"a backdrop needs a positive size, got {request.size}")
        # The field is smooth: drawn at a quarter of the size, enlarged bilinearly in floats
        # (no 8-bit steps), then dithered at full size.
        coarse = (max(2, math.ceil(width / _COARSE)), max(2, math.ceil(height / _COARSE)))
        field = self._field(request, coarse)
        channels = [
            np.asarray(Image.fromarray(field[..., c], "F").resize(request.size, _BILINEAR))
            for c in range(3)
        ]
        seed = zlib.crc32(repr((request.style, request.palette, request.size)).encode())
        return _dithered(np.dstack(channels), seed)

    def _field(self, request: BackdropRequest, size: tuple[int, int]) -> Floats:
        top, bottom = self._colours(request)
        y, light = _ramps(size)
        pixels = top[None, None, :] + (bottom - top)[None, None, :] * y[..., None]
        # A soft pool of light behind the subject, a gentle falloff toward the corners.
        glow = (1.0 - np.clip(light, 0.0, 1.0)) ** 2
        pixels = pixels + (255.0 - pixels) * (0.18 * glow)[..., None]
        falloff = 0.02 if request.style == "white" else 0.06
        field: Floats = pixels * (1.0 - falloff * np.clip(light - 0.6, 0.0, 1.0))[..., None]
        return np.ascontiguousarray(field, dtype=np.float32)

    @staticmethod
    def _colours(request: BackdropRequest) -> tuple[Floats, Floats]:
        palette = request.palette or NEUTRAL
        first = palette[0]
        second = palette[1] if len(palette) > 1 else _complement(first)
        if request.style == "white":
            return _mix((255, 255, 255), first, 0.0), _mix((236, 236, 234), first, 0.03)
        if request.style == "pastel":
            # One hue of the subject, very light: the subject keeps the colour, not the wall.
            return (
                _soften(first, lightness=0.82, saturation=0.55),
                _soften(first, lightness=0.7, saturation=0.6),
            )
        if not request.palette:
            return _mix(NEUTRAL[0], (255, 255, 255), 0.2), _mix(NEUTRAL[1], (0, 0, 0), 0.1)
        return (
            _soften(second, lightness=0.55, saturation=0.45),
            _soften(first, lightness=0.3, saturation=0.5),
        )

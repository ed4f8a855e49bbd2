"""Generated studio and flat-lay photos with their true garment masks, for the cut-out quality
measure: soft cast shadows, gradient backdrops, white on white, patterns, several garments.

Each garment is a union of polygons in a unit frame, drawn supersampled (anti-aliased edges)
over a backdrop; a cast shadow is the garment's own silhouette, offset and blurred, darkening
the backdrop only. Sensor noise and JPEG compression finish the photo. Same seed, same pixels.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from scipy import ndimage

Floats = NDArray[np.float32]
Bools = NDArray[np.bool_]
Polygon = list[tuple[float, float]]

_SS = 4  # supersampling of garment edges

SHAPES: dict[str, list[Polygon]] = {
    "tshirt": [
        [
            (0.3, 0.0),
            (0.7, 0.0),
            (1.0, 0.18),
            (0.9, 0.38),
            (0.78, 0.3),
            (0.78, 1.0),
            (0.22, 1.0),
            (0.22, 0.3),
            (0.1, 0.38),
            (0.0, 0.18),
        ],
    ],
    "trousers": [
        [(0.1, 0.0), (0.9, 0.0), (1.0, 1.0), (0.56, 1.0), (0.5, 0.3), (0.44, 1.0), (0.0, 1.0)],
    ],
    "skirt": [[(0.25, 0.0), (0.75, 0.0), (1.0, 1.0), (0.0, 1.0)]],
    "dress": [
        [
            (0.32, 0.0),
            (0.42, 0.0),
            (0.5, 0.1),
            (0.58, 0.0),
            (0.68, 0.0),
            (0.7, 0.35),
            (1.0, 1.0),
            (0.0, 1.0),
            (0.3, 0.35),
        ],
    ],
    "sock": [[(0.1, 0.0), (0.6, 0.0), (0.6, 0.6), (1.0, 0.75), (1.0, 1.0), (0.1, 1.0)]],
    "cap": [
        [
            (0.1, 0.55),
            (0.2, 0.2),
            (0.5, 0.0),
            (0.8, 0.2),
            (0.9, 0.55),
            (1.0, 0.7),
            (1.0, 1.0),
            (0.0, 1.0),
        ]
    ],
}


@dataclass(frozen=True)
class Piece:
    shape: str
    cx: float  # centre, as a share of the width and height
    cy: float
    size: float  # height, as a share of the image height
    aspect: float  # width / height
    angle: float  # degrees
    colour: tuple[int, int, int]
    pattern: str = "solid"  # solid, stripes, check
    hole: bool = False  # a cut-out in the middle (a bag's handle opening)
    straps: bool = False  # two thin straps on top (a camisole)


@dataclass(frozen=True)
class SceneSpec:
    name: str
    category: str  # shadow, gradient, white, pattern, flatlay, hole-strap
    pieces: tuple[Piece, ...]
    backdrop: tuple[int, int, int]
    gradient: float = 0.0  # total change of brightness across the frame
    shadow: float = 0.0  # darkening under the cast shadow (0 = none)
    seed: int = 0


@dataclass(frozen=True)
class Scene:
    spec: SceneSpec
    image: Image.Image
    truth: Bools

    @property
    def items(self) -> int:
        return len(self.spec.pieces)


def _polygons(piece: Piece, width: int, height: int) -> list[Polygon]:
    h = piece.size * height
    w = h * piece.aspect
    c, s = math.cos(math.radians(piece.angle)), math.sin(math.radians(piece.angle))
    cx, cy = piece.cx * width, piece.cy * height
    out = []
    for polygon in SHAPES[piece.shape]:
        points = []
        for u, v in polygon:
            x, y = (u - 0.5) * w, (v - 0.5) * h
            points.append(((cx + c * x - s * y) * _SS, (cy + s * x + c * y) * _SS))
        out.append(points)
    return out


def _coverage(piece: Piece, width: int, height: int) -> Floats:
    canvas = Image.new("L", (width * _SS, height * _SS), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in _polygons(piece, width, height):
        draw.polygon(polygon, fill=255)
    h = piece.size * height * _SS
    cx, cy = piece.cx * width * _SS, piece.cy * height * _SS
    if piece.hole:
        r = 0.16 * h
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=0)
    if piece.straps:
        top = cy - 0.5 * h
        half = 0.5 * h * piece.aspect
        stroke = max(2, int(0.006 * height * _SS))
        for side in (-1, 1):
            x = cx + side * 0.25 * half
            draw.line((x, top, x + side * 0.08 * h, top - 0.22 * h), fill=255, width=stroke)
        draw.line(
            (cx - 0.17 * h, top - 0.22 * h, cx + 0.17 * h, top - 0.22 * h), fill=255, width=stroke
        )
    big = np.asarray(canvas, dtype=np.float32) / 255.0
    return np.asarray(big.reshape(height, _SS, width, _SS).mean(axis=(1, 3)), dtype=np.float32)


def _fabric(piece: Piece, rng: np.random.Generator, width: int, height: int) -> Floats:
    base = np.asarray(piece.colour, dtype=np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    period = 0.03 * height
    if piece.pattern == "stripes":
        weight = (np.sin(2 * math.pi * ys / period) > 0).astype(np.float32)
    elif piece.pattern == "check":
        weight = (np.sin(2 * math.pi * ys / period) > 0) ^ (np.sin(2 * math.pi * xs / period) > 0)
        weight = weight.astype(np.float32)
    else:
        weight = np.zeros((height, width), dtype=np.float32)
    other = np.clip(base + (80.0 if base.mean() < 128 else -80.0), 0, 255)
    weight = ndimage.gaussian_filter(weight, 0.7)
    fabric = base * (1 - weight[..., None]) + other * weight[..., None]
    # Folds: gentle, low-frequency shading of the cloth.
    folds = ndimage.gaussian_filter(rng.normal(size=(height, width)).astype(np.float32), 18)
    folds /= np.abs(folds).max() + 1e-6
    return np.asarray(fabric * (1 + 0.06 * folds[..., None]), dtype=np.float32)


def render(spec: SceneSpec, width: int = 1024, height: int = 768) -> Scene:
    rng = np.random.default_rng(spec.seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 1.0 - spec.gradient * (0.6 * xs / width + 0.4 * ys / height)
    photo = np.asarray(spec.backdrop, dtype=np.float32) * light[..., None]
    truth = np.zeros((height, width), dtype=bool)
    coverages = [_coverage(piece, width, height) for piece in spec.pieces]
    if spec.shadow > 0:
        # Light from the upper left: the shadow falls down and right, soft with distance.
        union = np.maximum.reduce(coverages)
        shift = (0.025 * height, 0.03 * width)
        cast = ndimage.gaussian_filter(ndimage.shift(union, shift, order=1), 0.022 * height)
        photo *= 1 - spec.shadow * cast[..., None]
    for piece, coverage in zip(spec.pieces, coverages, strict=True):
        fabric = _fabric(piece, rng, width, height)
        photo = photo * (1 - coverage[..., None]) + fabric * coverage[..., None]
        truth |= coverage >= 0.5
    photo += rng.normal(0, 2.0, size=photo.shape).astype(np.float32)
    image = Image.fromarray(np.clip(photo + 0.5, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return Scene(spec, Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), truth)


NAVY, RED, GREEN, GREY, BLACK, MUSTARD = (
    (32, 58, 112),
    (176, 38, 44),
    (38, 110, 70),
    (110, 110, 114),
    (24, 24, 26),
    (226, 190, 60),
)
WHITE_SWEEP, WHITE_SHIRT, LIGHT_GREY, BEIGE = (
    (238, 238, 235),
    (250, 250, 248),
    (214, 214, 211),
    (228, 218, 200),
)


def specs(quick: bool = False) -> list[SceneSpec]:
    """The scene set: every category at least once; `quick` keeps one of each."""
    shirt = Piece("tshirt", 0.5, 0.5, 0.7, 0.95, 0.0, NAVY)
    scenes = [
        SceneSpec("shadow-navy-tshirt", "shadow", (shirt,), WHITE_SWEEP, shadow=0.45, seed=1),
        SceneSpec(
            "shadow-grey-dress",
            "shadow",
            (Piece("dress", 0.48, 0.48, 0.8, 0.7, 4.0, GREY),),
            LIGHT_GREY,
            shadow=0.4,
            seed=2,
        ),
        SceneSpec(
            "shadow-red-trousers-gradient",
            "shadow",
            (Piece("trousers", 0.5, 0.5, 0.75, 0.6, -6.0, RED),),
            BEIGE,
            gradient=0.15,
            shadow=0.35,
            seed=3,
        ),
        SceneSpec(
            "gradient-green-skirt",
            "gradient",
            (Piece("skirt", 0.5, 0.52, 0.6, 1.0, 0.0, GREEN),),
            LIGHT_GREY,
            gradient=0.25,
            seed=4,
        ),
        SceneSpec(
            "gradient-black-tshirt",
            "gradient",
            (Piece("tshirt", 0.52, 0.5, 0.72, 0.95, 8.0, BLACK),),
            WHITE_SWEEP,
            gradient=0.3,
            seed=5,
        ),
        SceneSpec(
            "white-shirt-on-light-grey",
            "white",
            (Piece("tshirt", 0.5, 0.5, 0.72, 0.95, 0.0, WHITE_SHIRT),),
            LIGHT_GREY,
            seed=6,
        ),
        SceneSpec(
            "white-shirt-on-white",
            "white",
            (Piece("tshirt", 0.5, 0.5, 0.72, 0.95, -5.0, WHITE_SHIRT),),
            (226, 226, 223),
            gradient=0.04,
            seed=7,
        ),
        SceneSpec(
            "pattern-striped-tshirt",
            "pattern",
            (Piece("tshirt", 0.5, 0.5, 0.72, 0.95, 0.0, NAVY, "stripes"),),
            WHITE_SWEEP,
            seed=8,
        ),
        SceneSpec(
            "pattern-check-skirt-shadow",
            "pattern",
            (Piece("skirt", 0.5, 0.5, 0.62, 1.0, 3.0, RED, "check"),),
            BEIGE,
            shadow=0.3,
            seed=9,
        ),
        SceneSpec(
            "flatlay-three",
            "flatlay",
            (
                Piece("tshirt", 0.27, 0.45, 0.55, 0.95, -4.0, NAVY),
                Piece("trousers", 0.68, 0.5, 0.8, 0.55, 3.0, GREY),
                Piece("cap", 0.27, 0.86, 0.2, 1.4, 0.0, RED),
            ),
            WHITE_SWEEP,
            seed=10,
        ),
        SceneSpec(
            "flatlay-socks-and-skirt-shadow",
            "flatlay",
            (
                Piece("skirt", 0.35, 0.5, 0.6, 1.0, 0.0, MUSTARD, "stripes"),
                Piece("sock", 0.75, 0.3, 0.35, 0.6, 10.0, BLACK),
                Piece("sock", 0.78, 0.74, 0.35, 0.6, -8.0, BLACK),
            ),
            LIGHT_GREY,
            shadow=0.3,
            seed=11,
        ),
        SceneSpec(
            "one-bag-with-a-hole",
            "hole-strap",
            (Piece("skirt", 0.5, 0.55, 0.6, 0.9, 0.0, GREEN, hole=True),),
            WHITE_SWEEP,
            seed=12,
        ),
        SceneSpec(
            "one-camisole-with-thin-straps",
            "hole-strap",
            (Piece("skirt", 0.5, 0.62, 0.55, 0.8, 0.0, RED, straps=True),),
            WHITE_SWEEP,
            seed=13,
        ),
    ]
    if quick:
        seen: set[str] = set()
        quick_set = []
        for scene in scenes:
            if scene.category not in seen:
                seen.add(scene.category)
                quick_set.append(scene)
        return quick_set
    return scenes

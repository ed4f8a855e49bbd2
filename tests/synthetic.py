"""Deterministic garment scenes with a true mask: studio and flat-lay photos without a camera.

A scene is a garment drawn as polygons in its own unit frame, placed with a scale, a rotation
and an offset, filled with fabric (colour, stripes or checks, weave, shading, folds) and
composited with anti-aliased edges over a plain or gently shaded background, then given sensor
noise and optionally JPEG compression. Same arguments, same pixels.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from scipy import ndimage

FloatArray = NDArray[np.float32]
BoolArray = NDArray[np.bool_]
Point = tuple[float, float]
Polygon = list[Point]

KINDS: tuple[str, ...] = (
    "tshirt",
    "shirt",
    "trousers",
    "shorts",
    "dress",
    "skirt",
    "hoodie",
    "jacket",
    "sock",
    "cap",
)
BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "vignette", "soft")
PATTERNS: tuple[str, ...] = ("solid", "stripes", "check", "heather")

BACKGROUND_COLOURS: tuple[tuple[int, int, int], ...] = (
    (242, 242, 239),  # white sweep
    (214, 214, 211),  # light grey
    (228, 218, 200),  # warm beige paper
    (203, 212, 222),  # pale blue-grey
    (62, 62, 66),  # charcoal
)
GARMENT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (32, 58, 112),  # navy
    (176, 38, 44),  # red
    (38, 110, 70),  # green
    (90, 90, 96),  # grey
    (20, 20, 22),  # black
    (236, 200, 60),  # mustard
    (120, 80, 50),  # brown
    (92, 140, 196),  # denim blue
    (200, 120, 150),  # pink
    (246, 246, 244),  # white
    (210, 190, 150),  # khaki
)

# Supersampling factor for the anti-aliased garment edge (coverage, then mask = coverage >= 0.5).
_SS = 4


@dataclass(frozen=True)
class Garment:
    """A garment shape in its unit frame: polygons whose union is the garment."""

    kind: str
    aspect: float  # width / height of the unit frame once placed
    polygons: list[Polygon]
    details: list[Polygon]  # seams, plackets, buttons: drawn darker inside the garment


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 360.0
) -> Polygon:
    steps = 48
    return [
        (
            cx + rx * math.cos(math.radians(start + (end - start) * i / steps)),
            cy + ry * math.sin(math.radians(start + (end - start) * i / steps)),
        )
        for i in range(steps + 1)
    ]


def _seam(a: Point, b: Point, width: float = 0.008) -> Polygon:
    """A thin strip from a to b: a seam or a pocket edge."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / length * width / 2, dx / length * width / 2
    return [
        (a[0] + nx, a[1] + ny),
        (b[0] + nx, b[1] + ny),
        (b[0] - nx, b[1] - ny),
        (a[0] - nx, a[1] - ny),
    ]


def _neckline(cx: float, top: float, half: float, depth: float) -> Polygon:
    """A scooped neckline from left shoulder to right shoulder."""
    return [
        (cx - half * math.cos(t), top + depth * math.sin(t)) for t in np.linspace(0, math.pi, 9)
    ]


def garment(kind: str) -> Garment:
    """The shape of one garment kind."""
    if kind == "tshirt":
        body = [
            (0.20, 0.08),
            *_neckline(0.5, 0.04, 0.12, 0.08),
            (0.80, 0.08),
            (0.98, 0.30),
            (0.86, 0.40),
            (0.77, 0.32),
            (0.77, 0.96),
            (0.23, 0.96),
            (0.23, 0.32),
            (0.14, 0.40),
            (0.02, 0.30),
        ]
        return Garment(kind, 1.0, [body], [])
    if kind == "shirt":
        body = [
            (0.22, 0.08),
            (0.40, 0.03),
            (0.50, 0.09),
            (0.60, 0.03),
            (0.78, 0.08),
            (0.85, 0.18),
            (0.99, 0.80),
            (0.89, 0.83),
            (0.77, 0.40),
            (0.77, 0.97),
            (0.23, 0.97),
            (0.23, 0.40),
            (0.11, 0.83),
            (0.01, 0.80),
            (0.15, 0.18),
        ]
        placket = [(0.495, 0.09), (0.505, 0.09), (0.505, 0.97), (0.495, 0.97)]
        buttons = [_ellipse(0.52, y, 0.008, 0.008) for y in (0.18, 0.32, 0.46, 0.60, 0.74, 0.88)]
        collar = [(0.40, 0.03), (0.50, 0.09), (0.46, 0.14), (0.38, 0.07)]
        return Garment(kind, 1.05, [body], [placket, collar, *buttons])
    if kind == "trousers":
        legs = [
            (0.14, 0.02),
            (0.86, 0.02),
            (0.96, 0.98),
            (0.58, 0.98),
            (0.50, 0.28),
            (0.42, 0.98),
            (0.04, 0.98),
        ]
        waistband = [(0.14, 0.02), (0.86, 0.02), (0.865, 0.06), (0.135, 0.06)]
        return Garment(kind, 0.55, [legs], [waistband])
    if kind == "shorts":
        legs = [
            (0.16, 0.04),
            (0.84, 0.04),
            (0.96, 0.82),
            (0.56, 0.88),
            (0.50, 0.42),
            (0.44, 0.88),
            (0.04, 0.82),
        ]
        return Garment(kind, 1.05, [legs], [])
    if kind == "dress":
        body = [
            (0.33, 0.02),
            (0.38, 0.02),
            *_neckline(0.5, 0.06, 0.10, 0.10),
            (0.62, 0.02),
            (0.67, 0.02),
            (0.70, 0.22),
            (0.64, 0.42),
            (0.96, 0.96),
            (0.70, 0.99),
            (0.50, 1.00),
            (0.30, 0.99),
            (0.04, 0.96),
            (0.36, 0.42),
            (0.30, 0.22),
        ]
        return Garment(kind, 0.6, [body], [])
    if kind == "skirt":
        hem = [
            (0.5 + 0.46 * math.cos(t), 0.82 + 0.10 * math.sin(t))
            for t in np.linspace(0, math.pi, 13)
        ]
        body = [(0.28, 0.06), (0.72, 0.06), *hem]
        return Garment(kind, 1.0, [body], [])
    if kind in ("hoodie", "jacket"):
        body = [
            (0.21, 0.12),
            (0.78, 0.12),
            (0.86, 0.22),
            (0.99, 0.86),
            (0.88, 0.88),
            (0.77, 0.44),
            (0.78, 0.97),
            (0.22, 0.97),
            (0.23, 0.44),
            (0.12, 0.88),
            (0.01, 0.86),
            (0.14, 0.22),
        ]
        if kind == "hoodie":
            hood = _ellipse(0.5, 0.13, 0.16, 0.12)
            corners = [(0.33, 0.70), (0.67, 0.70), (0.70, 0.86), (0.30, 0.86)]
            pocket = [_seam(corners[i], corners[(i + 1) % 4]) for i in range(4)]
            drawstrings = [_seam((0.46, 0.22), (0.45, 0.38)), _seam((0.54, 0.22), (0.55, 0.38))]
            return Garment(kind, 1.0, [body, hood], [*pocket, *drawstrings])
        zip_line = [(0.497, 0.12), (0.503, 0.12), (0.503, 0.97), (0.497, 0.97)]
        lapel_l = [(0.40, 0.12), (0.497, 0.12), (0.497, 0.45), (0.36, 0.20)]
        lapel_r = [(0.60, 0.12), (0.503, 0.12), (0.503, 0.45), (0.64, 0.20)]
        return Garment(kind, 1.05, [body], [zip_line, lapel_l, lapel_r])
    if kind == "sock":
        leg = [(0.22, 0.02), (0.62, 0.02), (0.62, 0.62), (0.26, 0.78)]
        foot = [(0.26, 0.58), (0.62, 0.56), (0.92, 0.78), (0.90, 0.96), (0.40, 0.96), (0.24, 0.84)]
        heel = _ellipse(0.34, 0.82, 0.13, 0.14)
        toe = _ellipse(0.88, 0.87, 0.10, 0.095)
        cuff = [(0.22, 0.02), (0.62, 0.02), (0.62, 0.10), (0.22, 0.10)]
        return Garment(kind, 0.75, [leg, foot, heel, toe], [cuff])
    if kind == "cap":
        dome = _ellipse(0.40, 0.70, 0.36, 0.62, 180.0, 360.0)
        brim = _ellipse(0.74, 0.70, 0.25, 0.09)
        button = _ellipse(0.40, 0.10, 0.03, 0.03)
        seam = [(0.395, 0.10), (0.405, 0.10), (0.405, 0.70), (0.395, 0.70)]
        return Garment(kind, 1.4, [dome, brim], [seam, button])
    raise ValueError(f"unknown garment kind {kind!r}; choose one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Placement:
    """Where a garment lands: centre and size in pixels, rotation in degrees."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float

    def to_pixels(self, polygon: Polygon, scale: float = 1.0) -> Polygon:
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        out = []
        for u, v in polygon:
            x, y = (u - 0.5) * self.width, (v - 0.5) * self.height
            out.append(((self.cx + c * x - s * y) * scale, (self.cy + s * x + c * y) * scale))
        return out

    def to_unit(self, width: int, height: int) -> tuple[FloatArray, FloatArray]:
        """The garment-frame coordinates (u, v) of every pixel centre."""
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        x, y = xs + 0.5 - self.cx, ys + 0.5 - self.cy
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        u = (c * x + s * y) / self.width + 0.5
        v = (-s * x + c * y) / self.height + 0.5
        return u.astype(np.float32), v.astype(np.float32)


def _coverage(polygons: list[Polygon], place: Placement, width: int, height: int) -> FloatArray:
    """Fraction of each pixel covered by the union of the polygons (supersampled)."""
    canvas = Image.new("L", (width * _SS, height * _SS), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        draw.polygon(place.to_pixels(polygon, _SS), fill=255)
    big = np.asarray(canvas, dtype=np.float32) / 255.0
    return np.asarray(big.reshape(height, _SS, width, _SS).mean(axis=(1, 3)), dtype=np.float32)


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: int) -> FloatArray:
    """Zero-mean, unit-ish, low-frequency noise: lighting and fabric drape."""
    small = rng.normal(size=(cells, cells)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    field = ndimage.gaussian_filter(
        np.asarray(img, dtype=np.float32), max(width, height) / cells / 2
    )
    return np.asarray(field / (np.abs(field).max() + 1e-6), dtype=np.float32)


def _background(
    rng: np.random.Generator, width: int, height: int, style: str, colour: tuple[int, int, int]
) -> FloatArray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x = (xs - width / 2) / (max(width, height) / 2)
    y = (ys - height / 2) / (max(width, height) / 2)
    if style == "plain":
        light = np.ones_like(x)
    elif style == "gradient":
        theta = rng.uniform(0, 2 * math.pi)
        light = 1.0 + rng.uniform(0.05, 0.09) * (math.cos(theta) * x + math.sin(theta) * y)
    elif style == "vignette":
        r2 = x**2 + y**2
        # Not a pure quadratic: real lens falloff steepens towards the corners.
        light = 1.0 - rng.uniform(0.07, 0.12) * r2 - 0.03 * r2**2
    elif style == "soft":
        # A softbox off to one side: a broad falloff plus a slight vignette.
        lx, ly = rng.uniform(-1.6, 1.6), rng.choice([-1.4, 1.4])
        dist2 = (x - lx) ** 2 + (y - ly) ** 2
        light = 1.0 / (1.0 + 0.06 * dist2) - 0.04 * (x**2 + y**2)
        light = light / light.max()
    else:
        raise ValueError(f"unknown background {style!r}; choose one of {', '.join(BACKGROUNDS)}")
    # Paper or sweep grain: faint, low-frequency mottling.
    light = light * (1.0 + 0.006 * _smooth_field(rng, width, height, 12))
    base = np.asarray(colour, dtype=np.float32)
    return np.asarray(light[..., None] * base, dtype=np.float32)


def _fabric(
    rng: np.random.Generator,
    place: Placement,
    width: int,
    height: int,
    colour: tuple[int, int, int],
    pattern: str,
) -> FloatArray:
    u, v = place.to_unit(width, height)
    base = np.asarray(colour, dtype=np.float32)
    # A second colour for stripes and checks: the first, lighter or darker.
    shift = 70.0 if base.mean() < 128 else -70.0
    other = np.clip(base + shift * rng.uniform(0.6, 1.0), 0, 255)
    period = rng.uniform(0.05, 0.10)
    if pattern == "solid" or pattern == "heather":
        weight = np.zeros_like(u)
    elif pattern == "stripes":
        weight = 0.5 + 0.5 * np.tanh(4.0 * np.sin(2 * math.pi * v / period))
    elif pattern == "check":
        a = 0.5 + 0.5 * np.tanh(4.0 * np.sin(2 * math.pi * u / period))
        b = 0.5 + 0.5 * np.tanh(4.0 * np.sin(2 * math.pi * v / period))
        weight = 0.5 * (a + b)
    else:
        raise ValueError(f"unknown pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")
    rgb = (1 - weight[..., None]) * base + weight[..., None] * other
    # Drape: broad light and dark areas across the garment.
    light = 1.0 + 0.07 * _smooth_field(rng, width, height, 6)
    # Folds: a few creases, each a dark valley with a highlight on one side.
    for _ in range(int(rng.integers(3, 7))):
        angle = rng.uniform(0, math.pi)
        offset = rng.uniform(-0.3, 0.3)
        dist = (u - 0.5) * math.cos(angle) + (v - 0.5) * math.sin(angle) - offset
        along = -(u - 0.5) * math.sin(angle) + (v - 0.5) * math.cos(angle)
        fade = np.exp(-(((along - rng.uniform(-0.2, 0.2)) / rng.uniform(0.15, 0.35)) ** 2))
        w = rng.uniform(0.006, 0.015)
        depth = rng.uniform(0.08, 0.18)
        light = light - depth * fade * np.exp(-((dist / w) ** 2))
        light = light + 0.5 * depth * fade * np.exp(-(((dist - 2.5 * w) / (1.5 * w)) ** 2))
    # Weave: fine multiplicative grain; heather is a coarser speckle of light and dark fibres.
    grain = 0.05 if pattern == "heather" else 0.015
    weave = ndimage.gaussian_filter(rng.normal(size=(height, width)).astype(np.float32), 0.6)
    light = light * (1.0 + grain * weave / (weave.std() + 1e-6))
    return np.asarray(rgb * light[..., None], dtype=np.float32)


def _placement(
    rng: np.random.Generator, shape: Garment, width: int, height: int, fill: float, edge: str | None
) -> Placement:
    # Fit the garment's frame into `fill` of the image, keeping its aspect.
    gh = fill * height
    gw = gh * shape.aspect
    if gw > fill * width:
        gw = fill * width
        gh = gw / shape.aspect
    angle = float(rng.uniform(-8, 8))
    cx = width / 2 + rng.uniform(-0.08, 0.08) * width
    cy = height / 2 + rng.uniform(-0.06, 0.06) * height
    if edge is not None:
        # Push the garment past one side: between 12% and 25% of it leaves the frame.
        out = rng.uniform(0.12, 0.25)
        if edge == "bottom":
            cy = height - gh * (0.5 - out)
        elif edge == "top":
            cy = gh * (0.5 - out)
        elif edge == "left":
            cx = gw * (0.5 - out)
        elif edge == "right":
            cx = width - gw * (0.5 - out)
        else:
            raise ValueError(f"unknown edge {edge!r}")
    return Placement(float(cx), float(cy), float(gw), float(gh), angle)


def _pick_colour(
    rng: np.random.Generator, background: tuple[int, int, int]
) -> tuple[int, int, int]:
    # Keep the garment clearly apart from the background: close colours have their own tests.
    far = [c for c in GARMENT_COLOURS if np.linalg.norm(np.subtract(c, background)) > 80]
    return far[int(rng.integers(len(far)))]


def _finish(
    rng: np.random.Generator, rgb: FloatArray, noise: float, jpeg_quality: int | None
) -> Image.Image:
    # Sensor noise: a little stronger in the dark, as shot noise and read noise add up.
    sigma = noise * (1.0 + 0.5 * (1.0 - rgb.mean(axis=2, keepdims=True) / 255.0))
    noisy = rgb + sigma * rng.normal(size=rgb.shape).astype(np.float32)
    image = Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), mode="RGB")
    if jpeg_quality is None:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=jpeg_quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def compose(
    seed: int,
    width: int,
    height: int,
    items: list[tuple[str, Placement, tuple[int, int, int] | None, str | None]],
    background: str,
    *,
    background_colour: tuple[int, int, int] | None = None,
    noise: float = 2.0,
    jpeg_quality: int | None = None,
) -> tuple[Image.Image, BoolArray]:
    """Render garments (kind, placement, colour or None, pattern or None) over a background."""
    rng = np.random.default_rng(seed)
    bg_colour = background_colour or BACKGROUND_COLOURS[int(rng.integers(len(BACKGROUND_COLOURS)))]
    rgb = _background(rng, width, height, background, bg_colour)
    mask = np.zeros((height, width), dtype=bool)
    for kind, place, colour, pattern in items:
        shape = garment(kind)
        colour = colour or _pick_colour(rng, bg_colour)
        pattern = pattern or PATTERNS[int(rng.integers(len(PATTERNS)))]
        coverage = _coverage(shape.polygons, place, width, height)
        fabric = _fabric(rng, place, width, height, colour, pattern)
        if shape.details:
            # Seams and trims: a darker tone of the garment, inside its outline only.
            detail = _coverage(shape.details, place, width, height) * coverage
            fabric = fabric * (1.0 - 0.35 * detail[..., None])
        inside = ndimage.distance_transform_edt(coverage >= 0.5).astype(np.float32)
        # The edge of a garment laid flat curls away from the light: slightly darker.
        fabric = fabric * (1.0 - 0.10 * np.exp(-inside / 4.0))[..., None]
        rgb = coverage[..., None] * fabric + (1.0 - coverage[..., None]) * rgb
        mask |= coverage >= 0.5
    return _finish(rng, rgb, noise, jpeg_quality), mask


def make_scene(
    seed: int,
    width: int,
    height: int,
    kind: str,
    background: str,
    *,
    edge: str | None = None,
    garment_colour: tuple[int, int, int] | None = None,
    background_colour: tuple[int, int, int] | None = None,
    pattern: str | None = None,
    fill: float = 0.72,
    noise: float = 2.0,
    jpeg_quality: int | None = None,
) -> tuple[Image.Image, BoolArray]:
    """One garment photo and its true mask; `edge` ("bottom", "left"...) runs it off the frame."""
    rng = np.random.default_rng(seed)
    place = _placement(rng, garment(kind), width, height, fill, edge)
    item = (kind, place, garment_colour, pattern)
    return compose(
        seed + 7919,
        width,
        height,
        [item],
        background,
        background_colour=background_colour,
        noise=noise,
        jpeg_quality=jpeg_quality,
    )


def make_outfit(
    seed: int,
    width: int,
    height: int,
    kinds: tuple[str, ...],
    background: str,
    *,
    background_colour: tuple[int, int, int] | None = None,
    noise: float = 2.0,
    jpeg_quality: int | None = None,
) -> tuple[Image.Image, BoolArray]:
    """Several garments laid side by side without touching, as in a flat-lay of an outfit."""
    rng = np.random.default_rng(seed)
    slot = width / len(kinds)
    items: list[tuple[str, Placement, tuple[int, int, int] | None, str | None]] = []
    for i, kind in enumerate(kinds):
        shape = garment(kind)
        gh = 0.70 * height
        gw = min(gh * shape.aspect, 0.82 * slot)
        gh = gw / shape.aspect
        cx = slot * (i + 0.5) + rng.uniform(-0.03, 0.03) * slot
        cy = height / 2 + rng.uniform(-0.05, 0.05) * height
        items.append((kind, Placement(cx, cy, gw, gh, float(rng.uniform(-4, 4))), None, None))
    return compose(
        seed + 7919,
        width,
        height,
        items,
        background,
        background_colour=background_colour,
        noise=noise,
        jpeg_quality=jpeg_quality,
    )


def scene_cases() -> list[tuple[str, str, int, int | None]]:
    """(kind, background, seed, JPEG quality or None): every kind twice, every background."""
    cases = []
    for i, kind in enumerate(KINDS):
        for j in range(2):
            background = BACKGROUNDS[(i + 3 * j) % len(BACKGROUNDS)]
            jpeg = 88 if (i + j) % 3 == 0 else None
            cases.append((kind, background, 1000 + 10 * i + j, jpeg))
    return cases


def scene_set(width: int = 384, height: int = 288) -> list[tuple[str, Image.Image, BoolArray]]:
    """The scenes of `scene_cases` rendered: (name, image, mask)."""
    scenes = []
    for kind, background, seed, jpeg in scene_cases():
        image, mask = make_scene(seed, width, height, kind, background, jpeg_quality=jpeg)
        scenes.append((f"{kind}-{background}-{seed}", image, mask))
    return scenes


def bright_square(size: int = 64) -> Image.Image:
    """A light square on a dark ground: the smallest image every background backend must cut."""
    image = Image.new("RGB", (size, size), (20, 20, 20))
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill=(235, 235, 235))
    return image


def alpha_at(image: Image.Image, x: int, y: int) -> int:
    value = image.getchannel("A").getpixel((x, y))
    assert isinstance(value, int)
    return value


def person_photo(width: int = 600, height: int = 900, seed: int = 7) -> Image.Image:
    """A standing figure (head, neck, torso in a grey tee, arms, dark trousers, shoes) on a
    light studio backdrop with sensor noise: what a try-on backend needs to find a person."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), (236, 234, 230))
    draw = ImageDraw.Draw(image)
    cx = width / 2
    unit = height / 9  # the figure is about 8 heads tall

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (round(x0), round(y0), round(x1), round(y1))

    skin = (201, 156, 128)
    draw.ellipse(box(cx - 0.45 * unit, 0.35 * unit, cx + 0.45 * unit, 1.45 * unit), fill=skin)
    draw.rectangle(box(cx - 0.18 * unit, 1.35 * unit, cx + 0.18 * unit, 1.75 * unit), fill=skin)
    draw.rectangle(
        box(cx - 1.0 * unit, 1.7 * unit, cx + 1.0 * unit, 4.4 * unit), fill=(128, 128, 132)
    )
    for side in (-1, 1):
        x0 = cx + side * 1.0 * unit
        x1 = cx + side * 1.35 * unit
        draw.rectangle(box(min(x0, x1), 1.8 * unit, max(x0, x1), 4.6 * unit), fill=skin)
        leg0 = cx + side * 0.05 * unit
        leg1 = cx + side * 0.85 * unit
        draw.rectangle(
            box(min(leg0, leg1), 4.4 * unit, max(leg0, leg1), 8.2 * unit), fill=(38, 44, 66)
        )
        draw.rectangle(
            box(min(leg0, leg1), 8.2 * unit, max(leg0, leg1), 8.55 * unit), fill=(25, 25, 25)
        )
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 1.5, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

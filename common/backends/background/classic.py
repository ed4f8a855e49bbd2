"""The embedded default: the background is modelled from the image border, no weights.

For studio and flat-lay shots on a plain or gently shaded background. A smooth polynomial
surface, fitted robustly to the border and then to every pixel that looks like background,
predicts the background everywhere; pixels far from it, relative to the noise measured on the
border, are the garment. The mask is found on a reduced copy (fast, and averaging halves the
noise); the boundary is then settled at full resolution, where a pixel's alpha is the share of
the local garment contrast it shows, so it follows the true anti-aliased edge.
"""

from __future__ import annotations

import math
from typing import Self

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from common.backends.background.base import BackgroundBackend
from common.config import Settings
from common.morphology import dilate, erode

Floats = NDArray[np.float32]
Bools = NDArray[np.bool_]

# Orthonormal opponent axes (red-green, yellow-blue, lightness): distances stay those of RGB,
# but lightness, where shading and most noise live, gets its own noise scale.
_OPPONENT = np.array(
    [
        [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
        [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
    ],
    dtype=np.float32,
)

_WORKING_EDGE = 512  # long edge of the reduced copy the mask is found on
_BORDER_FRACTION = 0.012  # width of the sampled border strip, as a fraction of the short side
_MAX_SAMPLES = 6000  # more samples than this add time, not accuracy
_FIT_ROUNDS = 6
_INLIER = 4.0  # samples within this many noise scales of the model are background
# Least noise scale per axis, grey levels: a clean image must not make every ripple a garment,
# and JPEG smears colour a pixel or two past an edge (chroma subsampling), so chroma gets more.
_NOISE_FLOOR = np.array([2.0, 2.0, 1.0], dtype=np.float32)
_HIGH = 7.0  # noise-normalised distance of certain foreground
_LOW = 4.0  # possible foreground, kept only when connected to certain foreground
_MIN_AREA = 0.0008  # specks smaller than this fraction of the image are dropped
_BAND_IN = 4  # pixels of the reduced mask re-decided at full resolution, inside the edge
_DEAD_ZONE = 0.12  # shares below this are background, above one minus this are garment
_INTERIOR_DEGREE = 4  # of the surface refitted on all background: lens falloff goes as r⁴
_REFITS = 2
_MIN_HOLE = 0.002  # enclosed backdrop at least this share of the image stays a hole
_HOLE_DISTANCE = 2.5  # mean noise-normalised distance of a hole that shows the backdrop
_SHADOW_DEEPEST = 0.35  # a soft cast shadow keeps at least this share of the backdrop's light
_SHADOW_SLOPE = 0.06  # most change of that share per reduced pixel inside a soft shadow
_SHADOW_EDGE = 0.006  # how much steeper at a fine scale than a coarse one an edge is, least
_SQUARE = np.ones((3, 3), dtype=bool)


def _axis(n: int) -> Floats:
    """Pixel-centre coordinates along one side, mapped to [-1, 1] whatever the resolution."""
    return ((np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1).astype(np.float32)


def _exponents(degree: int) -> list[tuple[int, int]]:
    """Powers (of x, of y) of every term of a bivariate polynomial up to `degree`."""
    return [(i, total - i) for total in range(degree + 1) for i in range(total, -1, -1)]


def _design(x: Floats, y: Floats, degree: int) -> Floats:
    """The polynomial basis evaluated at sample points, one column per term."""
    xp, yp = [np.ones_like(x)], [np.ones_like(y)]
    for _ in range(degree):
        xp.append(xp[-1] * x)
        yp.append(yp[-1] * y)
    return np.stack([xp[i] * yp[j] for i, j in _exponents(degree)], axis=-1)


def _surface(coef: Floats, degree: int, height: int, width: int) -> Floats:
    """The fitted polynomial on the full grid, summed row polynomial by row polynomial."""
    x, y = _axis(width), _axis(height)
    out = np.zeros((height, width, coef.shape[1]), dtype=np.float32)
    for j in range(degree + 1):
        # Every term with y**j shares one polynomial in x: evaluate it once along a row.
        row = np.zeros((width, coef.shape[1]), dtype=np.float32)
        for (i, jj), c in zip(_exponents(degree), coef, strict=True):
            if jj == j:
                row += np.multiply.outer(x**i, c)
        out += (y**j)[:, None, None] * row[None, :, :]
    return out


def _opponent(rgb: Floats) -> Floats:
    """RGB to the opponent axes; einsum because a threaded BLAS call costs more than it saves."""
    return np.asarray(np.einsum("...c,dc->...d", rgb, _OPPONENT), dtype=np.float32)


def _fit(basis: Floats, values: Floats, keep: Bools, floor: Floats) -> tuple[Floats, Floats, Bools]:
    """Robust least squares: refit on the samples the last fit explains, a few rounds."""
    coef = np.zeros((basis.shape[1], values.shape[1]), dtype=np.float32)
    scale = floor.astype(np.float32)
    for _ in range(_FIT_ROUNDS):
        if keep.sum() < 2 * basis.shape[1]:
            break
        # Normal equations: a handful of unknowns on [-1, 1] coordinates are well conditioned,
        # and lstsq's SVD is needlessly slow here.
        chosen = basis[keep].astype(np.float64)
        gram = chosen.T @ chosen + 1e-6 * np.eye(basis.shape[1])
        coef = np.linalg.solve(gram, chosen.T @ values[keep]).astype(np.float32)
        residual = values - np.einsum("nk,kc->nc", basis, coef)
        mad = np.median(np.abs(residual[keep]), axis=0) * 1.4826
        scale = np.maximum(mad, floor).astype(np.float32)
        distance = np.sqrt(np.sum((residual / scale) ** 2, axis=1))
        inliers = distance < _INLIER
        if inliers.sum() < 0.3 * len(inliers):
            # Too few agree (a busy border): trust the best half rather than nothing.
            inliers = distance <= np.quantile(distance, 0.5)
        if np.array_equal(inliers, keep):
            break
        keep = inliers
    return coef, scale, keep


def _border_fit(pixels: Floats, floor: Floats) -> tuple[Floats, Floats]:
    """Quadratic background from a strip along the four edges, ignoring garment on it."""
    height, width = pixels.shape[:2]
    short = min(height, width)
    strip = int(np.clip(round(_BORDER_FRACTION * short), 1, max(1, short // 4)))
    ring = np.zeros((height, width), dtype=bool)
    ring[:strip, :] = ring[-strip:, :] = True
    ring[:, :strip] = ring[:, -strip:] = True
    ys, xs = np.nonzero(ring)
    step = max(1, len(ys) // _MAX_SAMPLES)
    ys, xs = ys[::step], xs[::step]
    values = pixels[ys, xs]
    # Start from the half of the border closest to its median colour: a garment crossing the
    # frame edge is a minority of the border, so it stays out of the first fit.
    spread = np.linalg.norm(values - np.median(values, axis=0), axis=1)
    keep = spread <= np.quantile(spread, 0.5)
    basis = _design(_axis(width)[xs], _axis(height)[ys], 2)
    coef, scale, _ = _fit(basis, values, keep, floor)
    return coef, scale


def _interior_fit(
    pixels: Floats, background: Bools, floor: Floats, degree: int
) -> tuple[Floats, Floats] | None:
    """Background from every pixel that looks like background, or None if too few."""
    height, width = pixels.shape[:2]
    step = max(1, math.isqrt(height * width // _MAX_SAMPLES))
    values = pixels[::step, ::step].reshape(-1, 3)
    keep = background[::step, ::step].ravel()
    if keep.sum() < 0.05 * len(keep):
        return None
    ys, xs = np.mgrid[0:height:step, 0:width:step]
    basis = _design(_axis(width)[xs.ravel()], _axis(height)[ys.ravel()], degree)
    coef, scale, _ = _fit(basis, values, keep, floor)
    return coef, scale


def _distance(pixels: Floats, surface: Floats, scale: Floats) -> Floats:
    """Distance of every pixel to the background model, in units of the border noise."""
    residual = (pixels - surface) / scale
    return np.asarray(np.sqrt(np.einsum("hwc,hwc->hw", residual, residual)), dtype=np.float32)


def _without_specks(candidate: Bools, certain: Bools, min_area: int) -> Bools:
    """Components of `candidate` that hold certain foreground and are not specks."""
    labels, count = ndimage.label(candidate, structure=_SQUARE)
    if count == 0:
        return candidate
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    anchored = np.bincount(labels[certain], minlength=count + 1) > 0
    keep = anchored & (sizes >= min_area)
    keep[0] = False
    return np.asarray(keep[labels])


def _filled(mask: Bools, distance: Floats | None = None) -> Bools:
    """Fill holes: background regions that do not reach the frame are inside a garment.

    Given the `distance` map, large holes that show the backdrop itself (a bag's handle
    opening) stay open: the backdrop seen through a hole matches the model within noise, a
    pale print or a fold inside a garment does not.
    """
    # One labelling pass instead of ndimage.binary_fill_holes, which iterates to convergence.
    labels, count = ndimage.label(~mask)
    if count == 0:
        return mask
    outside = np.zeros(count + 1, dtype=bool)
    for edge in (labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1]):
        outside[edge] = True
    if distance is not None:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        sums = np.bincount(labels.ravel(), weights=distance.ravel(), minlength=count + 1)
        outside |= (sizes >= _MIN_HOLE * mask.size) & (sums < _HOLE_DISTANCE * sizes)
    outside[0] = False
    return np.asarray(~outside[labels])


def _shadows(pixels: Floats, surface: Floats, scale: Floats, candidate: Bools) -> Bools:
    """Soft cast shadows inside `candidate`: the backdrop darkened, reached from it smoothly.

    In a shadow the backdrop keeps its hue and only darkens, by a share that changes slowly;
    a garment, even one of the backdrop's hue (grey on white), is bounded by a sharp step. So
    shadow is what can be reached from the open backdrop through pixels that are a darkened
    backdrop and whose darkening changes gently.
    """
    lightness = np.maximum(surface[..., 2], 1.0)
    share = pixels[..., 2] / lightness
    # The colour the backdrop would have, darkened by `share`: only chroma is compared.
    chroma = (pixels[..., :2] - share[..., None] * surface[..., :2]) / scale[:2]
    darkened = (np.sqrt(np.sum(chroma**2, axis=-1)) < _LOW) & (share > _SHADOW_DEEPEST)
    darkened &= share < 1.0 + _LOW * scale[2] / lightness
    # An edge, however faint, is steeper at a fine scale than at a coarse one; a shadow's
    # penumbra is as steep at both.
    fine = ndimage.gaussian_gradient_magnitude(share, 0.8)
    coarse = ndimage.gaussian_gradient_magnitude(share, 2.0)
    smooth = (fine < _SHADOW_SLOPE) & (fine - coarse < _SHADOW_EDGE)
    reach = smooth & (darkened | ~candidate)
    labels, count = ndimage.label(reach, structure=_SQUARE)
    if count == 0:
        return np.zeros_like(candidate)
    open_backdrop = np.bincount(labels[~candidate & reach], minlength=count + 1) > 0
    open_backdrop[0] = False
    return np.asarray(open_backdrop[labels] & candidate)


def _segment(distance: Floats, shadow: Bools | None = None) -> Bools:
    """The garment mask: hysteresis threshold, no shadows, no specks, holes filled."""
    # No morphological closing: on the reduced copy it would bridge real gaps (an armpit, the
    # space between trouser legs) several full-size pixels wide.
    min_area = max(4, int(_MIN_AREA * distance.size))
    candidate, certain = distance > _LOW, distance > _HIGH
    if shadow is not None:
        candidate &= ~shadow
        certain &= ~shadow
    mask = _without_specks(candidate, certain, min_area)
    return _filled(mask, distance)


def _model_residual(
    pixels: Floats, ys: NDArray[np.intp], xs: NDArray[np.intp], coef: Floats, degree: int
) -> Floats:
    """Opponent-space difference from the background model of full-size pixels at (ys, xs)."""
    height, width = pixels.shape[:2]
    basis = _design(_axis(width)[xs], _axis(height)[ys], degree)
    model = np.asarray(np.einsum("nk,kc->nc", basis, coef), dtype=np.float32)
    return _opponent(pixels[ys, xs]) - model


def _frame_noise(pixels: Floats, coef: Floats, degree: int) -> float:
    """Typical grey-level distance of full-size background pixels: the outermost two rows
    and columns, median so a garment crossing the frame edge does not count."""
    height, width = pixels.shape[:2]
    step = max(1, (height + width) // 2000)
    cols = np.arange(0, width, step)
    rows = np.arange(0, height, step)
    ys = np.concatenate([np.zeros_like(cols), np.full_like(cols, height - 1), rows, rows])
    xs = np.concatenate([cols, cols, np.zeros_like(rows), np.full_like(rows, width - 1)])
    residual = _model_residual(pixels, ys, xs, coef, degree)
    return float(np.median(np.sqrt(np.sum(residual**2, axis=1))))


def _edge_alpha(
    pixels: Floats, mask: Bools, residual: Floats, coef: Floats, degree: int
) -> NDArray[np.uint8]:
    """Opaque inside; across the boundary band, the share of the local garment colour shown.

    A pixel the garment covers by a fraction c sits c of the way from the background colour
    to the garment colour, so projecting its difference from the background onto the nearby
    garment's difference estimates c. The band reaches a few pixels into the mask because JPEG
    bleeds colour past an edge, which the noise-level thresholds take for garment; bleed is
    mostly chroma, off the garment's direction, so the projection shaves it off.
    """
    height, width = pixels.shape[:2]
    inner = erode(mask, _BAND_IN, "square")
    band = dilate(mask, 1, "square") & ~inner
    # The colour a fully covered pixel shows: mean difference of the nearest inner pixels.
    size = 2 * _BAND_IN + 5
    weight = ndimage.uniform_filter(inner.astype(np.float32), size=size)
    garment = (
        np.stack(
            [
                ndimage.uniform_filter(np.where(inner, residual[..., k], 0.0), size=size)
                for k in range(3)
            ],
            axis=-1,
        )
        / np.maximum(weight, 1e-3)[..., None]
    )
    # Thin parts (straps, strings) have no inner pixels: take the strongest pixel nearby, which
    # for colour bleeding off a garment is that garment, and compare lengths only.
    grey = np.sqrt(np.sum(residual**2, axis=2))
    strongest = ndimage.maximum_filter(np.where(mask, grey, 0.0), size=2 * _BAND_IN + 3)

    ys, xs = np.nonzero(_upscaled(band, width, height))
    sy = np.minimum(ys * mask.shape[0] // height, mask.shape[0] - 1)
    sx = np.minimum(xs * mask.shape[1] // width, mask.shape[1] - 1)
    found = _model_residual(pixels, ys, xs, coef, degree)
    toward = garment[sy, sx]
    length = np.sqrt(np.sum(toward**2, axis=1))
    has_inner = (weight[sy, sx] > 1e-3) & (length > 1e-3)
    along = np.where(
        has_inner,
        np.sum(found * toward, axis=1) / np.maximum(length, 1e-3),
        np.sqrt(np.sum(found**2, axis=1)),
    )
    length = np.where(has_inner, length, strongest[sy, sx])
    # Noise along one direction: about a third of the variance of the three axes together.
    noise = _frame_noise(pixels, coef, degree) / math.sqrt(3)
    # A band pixel with no garment contrast nearby is background, whatever its own distance.
    share = (along - noise) / np.maximum(length - noise, 2.0 * noise + 1.0)

    alpha = np.where(_upscaled(inner, width, height), np.uint8(255), np.uint8(0))
    # A small dead zone at both ends: what is left of JPEG ringing is not garment, and half
    # coverage stays half.
    share = (share - _DEAD_ZONE) / (1.0 - 2 * _DEAD_ZONE)
    alpha[ys, xs] = np.rint(np.clip(share, 0.0, 1.0) * 255).astype(np.uint8)
    # Only the transition itself stays soft: texture makes the share of a pixel well inside
    # (or well outside) wander, which would read as a faint, ragged rim.
    # Holes of the alpha inside the mask are texture; holes of the mask itself stay open.
    hard = (alpha >= 128) | (_filled(alpha >= 128) & _upscaled(mask, width, height).astype(bool))
    alpha[erode(hard, 1, "square")] = 255
    alpha[erode(~hard, 1, "square")] = 0
    alpha[hard & (alpha < 128)] = 128
    return np.asarray(alpha, dtype=np.uint8)


def _upscaled(plane: NDArray[np.generic], width: int, height: int) -> NDArray[np.generic]:
    """Nearest-neighbour upscale of a 2-D plane to the full image size."""
    rows = np.minimum((np.arange(height) * plane.shape[0]) // height, plane.shape[0] - 1)
    cols = np.minimum((np.arange(width) * plane.shape[1]) // width, plane.shape[1] - 1)
    return np.asarray(plane[rows[:, None], cols[None, :]])


class ClassicBackground(BackgroundBackend):
    """Background from the border for plain studio and flat-lay shots."""

    name = "classic"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def remove(self, image: Image.Image) -> Image.Image:
        """Return `image` as RGBA with the garment opaque and the background transparent."""
        rgb = image.convert("RGB")
        width, height = rgb.size
        factor = max(1, math.ceil(max(width, height) / _WORKING_EDGE))
        # Box-averaged: cheaper to segment, and the noise drops by about the factor.
        small = rgb.reduce(factor) if factor > 1 else rgb
        pixels = _opponent(np.asarray(small, dtype=np.float32))
        sh, sw = pixels.shape[:2]

        coef, scale = _border_fit(pixels, _NOISE_FLOOR)
        degree = 2
        surface = _surface(coef, degree, sh, sw)
        mask = _segment(_distance(pixels, surface, scale))
        # Vignetting is not quite quadratic, so the border alone mispredicts the middle and the
        # corners. Refit a richer surface on everything seen as background, twice, since each
        # better fit gives back background the previous one took for garment.
        for _ in range(_REFITS):
            seen = ~dilate(mask, 2)
            refit = _interior_fit(pixels, seen, _NOISE_FLOOR, _INTERIOR_DEGREE)
            if refit is None:
                break
            coef, scale = refit
            degree = _INTERIOR_DEGREE
            surface = _surface(coef, degree, sh, sw)
            mask = _segment(_distance(pixels, surface, scale))
        distance = _distance(pixels, surface, scale)
        shadow = _shadows(pixels, surface, scale, distance > _LOW)
        if shadow.any():
            mask = _segment(distance, shadow)

        alpha = np.zeros((height, width), dtype=np.uint8)
        if mask.any():
            full = np.asarray(rgb, dtype=np.float32)
            alpha = _edge_alpha(full, mask, pixels - surface, coef, degree)
        out = rgb.copy()
        out.putalpha(Image.fromarray(alpha, mode="L"))
        return out

"""The classic backend cuts garments out of plain and gently shaded studio backgrounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from common.backends.background import new_background
from common.backends.background.classic import ClassicBackground
from common.config import Settings
from tests.synthetic import BACKGROUNDS, compose, make_outfit, make_scene, scene_cases

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-shirt.jpg"
BACKEND = ClassicBackground()


def alpha_of(image: Image.Image) -> NDArray[np.uint8]:
    return np.asarray(BACKEND.remove(image))[..., 3]


def iou(alpha: NDArray[np.uint8], truth: NDArray[np.bool_]) -> float:
    found = alpha >= 128
    return float((found & truth).sum() / (found | truth).sum())


@pytest.mark.parametrize(
    ("kind", "background", "seed", "jpeg"),
    scene_cases(),
    ids=[f"{k}-{b}-{s}" for k, b, s, _ in scene_cases()],
)
def test_cutout_matches_the_garment(
    kind: str, background: str, seed: int, jpeg: int | None
) -> None:
    image, truth = make_scene(seed, 384, 288, kind, background, jpeg_quality=jpeg)

    alpha = alpha_of(image)

    assert iou(alpha, truth) >= 0.95


@pytest.mark.parametrize(
    ("kind", "edge"),
    [("trousers", "bottom"), ("shirt", "left"), ("dress", "top"), ("hoodie", "right")],
)
@pytest.mark.parametrize("background", ["plain", "vignette"])
def test_garment_running_off_the_frame_is_kept(kind: str, edge: str, background: str) -> None:
    image, truth = make_scene(11, 384, 288, kind, background, edge=edge, jpeg_quality=90)
    assert truth[0].any() or truth[-1].any() or truth[:, 0].any() or truth[:, -1].any()

    alpha = alpha_of(image)

    assert iou(alpha, truth) >= 0.95


def test_output_is_rgba_of_the_input_size() -> None:
    image, _ = make_scene(3, 301, 157, "tshirt", "plain")

    out = BACKEND.remove(image)

    assert out.mode == "RGBA"
    assert out.size == (301, 157)
    assert np.array_equal(np.asarray(out)[..., :3], np.asarray(image))


def test_other_modes_are_accepted() -> None:
    image, truth = make_scene(3, 320, 240, "skirt", "gradient")

    out = BACKEND.remove(image.convert("L"))

    assert out.mode == "RGBA"
    assert iou(np.asarray(out)[..., 3], truth) >= 0.95


def test_large_images_are_cut_out_at_full_resolution() -> None:
    image, truth = make_scene(8, 1600, 1200, "hoodie", "soft", jpeg_quality=90)

    alpha = alpha_of(image)

    assert alpha.shape == (1200, 1600)
    assert iou(alpha, truth) >= 0.95


def test_edge_is_soft_and_only_at_the_boundary() -> None:
    image, truth = make_scene(4, 640, 480, "tshirt", "gradient", jpeg_quality=90)
    from_boundary = np.where(
        truth, ndimage.distance_transform_edt(truth), ndimage.distance_transform_edt(~truth)
    )

    alpha = alpha_of(image)

    soft = (alpha > 0) & (alpha < 255)
    assert soft.sum() > 0.5 * (truth & ~ndimage.binary_erosion(truth)).sum()
    assert (from_boundary[soft] <= 2).mean() >= 0.95
    assert (from_boundary[soft] <= 4).all()


@pytest.mark.parametrize("colour", [(255, 255, 255), (128, 128, 128), (20, 24, 30)])
def test_uniform_image_has_no_garment(colour: tuple[int, int, int]) -> None:
    image = Image.new("RGB", (320, 240), colour)

    alpha = alpha_of(image)

    assert not alpha.any()


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_empty_noisy_shaded_background_has_no_garment(background: str) -> None:
    image, _ = compose(5, 640, 480, [], background, noise=3.0, jpeg_quality=85)

    alpha = alpha_of(image)

    assert not alpha.any()


@pytest.mark.parametrize(
    ("garment", "background"),
    [
        ((222, 222, 220), (244, 244, 241)),  # light grey tee on a white sweep
        ((200, 190, 170), (228, 218, 200)),  # sand on beige paper
        ((185, 200, 215), (203, 212, 222)),  # pale blue on blue-grey
        ((82, 82, 88), (58, 58, 62)),  # dark grey on charcoal
    ],
)
@pytest.mark.parametrize("shading", ["plain", "gradient", "vignette"])
def test_colours_close_to_the_background_still_work(
    garment: tuple[int, int, int], background: tuple[int, int, int], shading: str
) -> None:
    image, truth = make_scene(
        21,
        384,
        288,
        "tshirt",
        shading,
        garment_colour=garment,
        background_colour=background,
        pattern="solid",
        jpeg_quality=90,
    )

    alpha = alpha_of(image)

    assert iou(alpha, truth) >= 0.95


def test_separate_garments_are_all_found() -> None:
    image, truth = make_outfit(5, 480, 320, ("tshirt", "trousers", "cap"), "soft")

    alpha = alpha_of(image)

    assert iou(alpha, truth) >= 0.95
    assert ndimage.label(alpha >= 128)[1] == 3


def test_bundled_sample_is_one_clean_garment() -> None:
    with Image.open(SAMPLE) as image:
        alpha = alpha_of(image.convert("RGB"))

    _, count = ndimage.label(alpha >= 128)
    assert count == 1
    assert 0.15 <= (alpha >= 128).mean() <= 0.6


def test_is_the_configured_default() -> None:
    backend = new_background(Settings())

    assert isinstance(backend, ClassicBackground)
    assert backend.name == "classic"
    backend.warmup()


def bench_scene(name: str) -> tuple[Image.Image, NDArray[np.bool_]]:
    from common.bench.scenes import render, specs

    scene = render(next(s for s in specs() if s.name == name), width=512, height=384)
    return scene.image, scene.truth


@pytest.mark.parametrize(
    "name", ["shadow-navy-tshirt", "shadow-grey-dress", "shadow-red-trousers-gradient"]
)
def test_a_soft_cast_shadow_stays_outside_the_cutout(name: str) -> None:
    image, truth = bench_scene(name)

    alpha = alpha_of(image)

    # The shadow falls down and to the right of the garment: that side must be transparent.
    beside = ndimage.binary_dilation(truth, iterations=12) & ~ndimage.binary_dilation(
        truth, iterations=3
    )
    assert iou(alpha, truth) >= 0.95
    assert (alpha[beside] >= 128).mean() < 0.05


def test_a_hole_that_shows_the_backdrop_stays_transparent() -> None:
    image, truth = bench_scene("one-bag-with-a-hole")
    hole = ndimage.binary_fill_holes(truth) & ~truth

    alpha = alpha_of(image)

    assert hole.sum() > 1000
    assert (alpha[ndimage.binary_erosion(hole, iterations=3)] >= 128).mean() < 0.01
    assert iou(alpha, truth) >= 0.95

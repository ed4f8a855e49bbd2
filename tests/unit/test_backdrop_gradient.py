"""The procedural backdrops: sizes, styles, the subject's palette, no banding."""

from __future__ import annotations

import numpy as np
import pytest

from common.backends.backdrop import BackdropRequest, new_backdrop, render_with_fallback
from common.backends.backdrop.gradient import GradientBackdrop
from common.config import Settings
from common.errors import ConfigurationError

NAVY = (20, 30, 110)
MUSTARD = (210, 170, 40)


def render(style: str, palette: tuple[tuple[int, int, int], ...] = (NAVY, MUSTARD)) -> np.ndarray:
    request = BackdropRequest(style, None, (360, 640), palette)  # type: ignore[arg-type]
    image = GradientBackdrop().render(request)
    assert image.mode == "RGB" and image.size == (360, 640)
    return np.asarray(image, dtype=np.float32)


def test_gradient_is_the_default_and_needs_no_model() -> None:
    backend = new_backdrop(Settings.from_env({}))

    assert isinstance(backend, GradientBackdrop)


def test_an_unknown_backend_is_a_configuration_error_naming_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="gemini, gradient, imagen, space"):
        new_backdrop(Settings.from_env({}, backdrop_backend="sdxl"))


def test_white_is_near_white_whatever_the_subject() -> None:
    pixels = render("white")

    assert pixels.min() >= 225 and pixels.mean() > 240
    assert np.abs(pixels[..., 0] - pixels[..., 2]).max() < 8  # neutral, not tinted


def test_pastel_takes_the_subjects_main_hue_very_light() -> None:
    pixels = render("pastel").reshape(-1, 3)

    mean = pixels.mean(axis=0)
    assert mean.min() > 170  # light
    assert mean[2] > mean[0] + 5  # navy's blue, not mustard's yellow


def test_gradient_runs_between_two_of_the_subjects_colours() -> None:
    pixels = render("gradient")

    top, bottom = pixels[:40].reshape(-1, 3).mean(axis=0), pixels[-40:].reshape(-1, 3).mean(axis=0)
    assert top[0] > top[2]  # the second colour (mustard) above
    assert bottom[2] > bottom[0]  # the first (navy) below, where the subject stands
    assert np.abs(top - bottom).max() > 30


def test_a_subject_without_colours_gets_a_neutral_gradient() -> None:
    pixels = render("gradient", palette=())

    mean = pixels.reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - mean.mean()).max() < 25


def test_the_dither_leaves_no_flat_bands() -> None:
    column = render("gradient")[:, 180, :].mean(axis=1)

    # Without dither, an 8-bit ramp repeats each value over runs of many rows.
    runs = np.diff(np.flatnonzero(np.diff(np.round(column)) != 0))
    assert runs.size == 0 or runs.max() < 40


def test_the_gradient_backend_is_never_a_fallback_of_itself() -> None:
    request = BackdropRequest("scene", "a beach", (64, 80), (NAVY,))

    drawn = render_with_fallback(GradientBackdrop(), request)

    assert drawn.backend == "gradient" and drawn.fallback is None
    assert drawn.image.size == (64, 80)


def test_the_studio_fingerprint_follows_only_what_changes_a_studio_result() -> None:
    base = Settings.from_env({})

    same = base.replace(backdrop_gemini_model="another-image-model")  # not the backend in use
    other = base.replace(backdrop_backend="gemini")

    assert same.studio_fingerprint() == base.studio_fingerprint()
    assert other.studio_fingerprint() != base.studio_fingerprint()
    assert other.studio_fingerprint()["backdrop_model"] == "gemini-2.5-flash-image"
    assert base.studio_fingerprint()["upscale"] == "lanczos"

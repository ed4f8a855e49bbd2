"""The space backend against a real Gradio app on 127.0.0.1 serving a rembg Space's API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from common.backends.background import new_background
from common.backends.background.space import SpaceBackground
from common.backends.gradio_space import map_error as _map_error
from common.config import Settings
from common.emulators import free_port
from common.errors import (
    BackendUnavailable,
    ConfigurationError,
    PermanentError,
    TransientError,
)
from tests.fakes.gradio_app import launched
from tests.synthetic import alpha_at, bright_square

pytestmark = [
    pytest.mark.slow,
    # gradio 6 calls a pandas option that pandas 3 deprecates, once per queued event.
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]

FOREGROUND_LEVEL = 128


def cut_out(image: Image.Image) -> Image.Image:
    """What the app does, like rembg's Space: bright pixels are the foreground."""
    cutout = image.convert("RGBA")
    cutout.putalpha(image.convert("L").point(lambda v: 255 if v >= FOREGROUND_LEVEL else 0))
    return cutout


def build_app() -> Any:
    import gradio as gr

    def predict(image: Image.Image) -> Image.Image:
        return cut_out(image)

    def small(image: Image.Image) -> Image.Image:
        return cut_out(image).resize(
            (image.width // 2, image.height // 2), Image.Resampling.NEAREST
        )

    def slider(image: Image.Image) -> tuple[Image.Image, Image.Image]:
        return image.convert("RGB"), cut_out(image)

    def mask(image: Image.Image) -> Image.Image:
        return cut_out(image).getchannel("A")

    def broken(image: Image.Image) -> Image.Image:
        raise ValueError("cannot find an object in this image")

    def quota(image: Image.Image) -> Image.Image:
        raise gr.Error("You have exceeded your GPU quota (60s left). Try again in 5 minutes.")

    def slow(image: Image.Image) -> Image.Image:
        time.sleep(1.5)
        return cut_out(image)

    def image_out() -> Any:
        return gr.Image(type="pil", format="png")

    with gr.Blocks(analytics_enabled=False) as app:
        source = gr.Image(type="pil")
        button = gr.Button()
        button.click(predict, source, image_out(), api_name="predict")
        button.click(small, source, image_out(), api_name="small")
        button.click(slider, source, [image_out(), image_out()], api_name="slider")
        button.click(mask, source, image_out(), api_name="mask")
        button.click(broken, source, image_out(), api_name="broken")
        button.click(quota, source, image_out(), api_name="quota")
        button.click(slow, source, image_out(), api_name="slow")
    return app


@pytest.fixture(scope="module")
def space_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with launched(build_app, tmp_path_factory.mktemp("gradio")) as url:
        yield url


@pytest.fixture(autouse=True)
def no_analytics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")


def space(url: str, api: str = "/predict", timeout_s: float = 10.0) -> Settings:
    return Settings.from_env(
        {}, background_backend="space", space=url, space_api=api, remote_timeout_s=timeout_s
    )


@pytest.fixture
def backend_for(space_url: str) -> Iterator[Any]:
    backends: list[SpaceBackground] = []

    def make(api: str = "/predict", timeout_s: float = 10.0) -> SpaceBackground:
        backend = SpaceBackground.from_settings(space(space_url, api, timeout_s))
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.close()


def assert_square_cut_out(cutout: Image.Image, size: int = 64) -> None:
    assert cutout.mode == "RGBA"
    assert cutout.size == (size, size)
    assert alpha_at(cutout, 32, 32) > 200
    assert alpha_at(cutout, 20, 44) > 200
    assert alpha_at(cutout, 2, 2) < 50
    assert alpha_at(cutout, 60, 32) < 50


def test_the_space_cuts_the_foreground_out(space_url: str) -> None:
    backend = new_background(space(space_url))

    cutout = backend.remove(bright_square())

    assert isinstance(backend, SpaceBackground)
    assert_square_cut_out(cutout)
    backend.close()


def test_the_connection_is_reused_across_requests(backend_for: Any) -> None:
    backend = backend_for()

    first = backend.remove(bright_square())
    second = backend.remove(bright_square())

    assert_square_cut_out(first)
    assert_square_cut_out(second)


def test_a_smaller_output_is_resized_to_the_input(backend_for: Any) -> None:
    backend = backend_for("/small")

    cutout = backend.remove(bright_square())

    assert_square_cut_out(cutout)


def test_of_several_outputs_the_one_with_transparency_is_the_cut_out(backend_for: Any) -> None:
    backend = backend_for("/slider")

    cutout = backend.remove(bright_square())

    assert_square_cut_out(cutout)


def test_a_mask_output_becomes_the_alpha_of_the_input(backend_for: Any) -> None:
    backend = backend_for("/mask")

    cutout = backend.remove(bright_square())

    assert_square_cut_out(cutout)
    assert cutout.convert("RGB").getpixel((32, 32)) == (235, 235, 235)


def test_an_app_error_on_our_image_is_permanent(backend_for: Any) -> None:
    backend = backend_for("/broken")

    with pytest.raises(BackendUnavailable) as raised:
        backend.remove(bright_square())

    assert isinstance(raised.value, PermanentError)
    assert raised.value.code == "backend_unavailable"
    assert not raised.value.retryable
    assert "cannot find an object" in raised.value.message


def test_a_quota_error_is_transient(backend_for: Any) -> None:
    backend = backend_for("/quota")

    with pytest.raises(TransientError) as raised:
        backend.remove(bright_square())

    assert raised.value.retryable


def test_a_missing_api_is_permanent(backend_for: Any) -> None:
    backend = backend_for("/no-such-api")

    with pytest.raises(BackendUnavailable, match="no-such-api"):
        backend.remove(bright_square())


def test_a_space_slower_than_the_timeout_is_transient(backend_for: Any) -> None:
    backend = backend_for("/slow", timeout_s=0.3)

    with pytest.raises(TransientError, match="timed out"):
        backend.remove(bright_square())


def test_warmup_pings_a_live_space(backend_for: Any) -> None:
    backend = backend_for()

    backend.warmup()
    backend.warmup()

    assert_square_cut_out(backend.remove(bright_square()))


def test_an_unreachable_space_is_transient_on_use_not_at_startup(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    backend = SpaceBackground.from_settings(space(url))

    with pytest.raises(TransientError):
        backend.warmup()
    with pytest.raises(TransientError):
        backend.remove(bright_square())
    backend.close()


def test_no_space_configured_fails_at_startup() -> None:
    with pytest.raises(ConfigurationError, match="CLOSET_SPACE"):
        SpaceBackground.from_settings(Settings.from_env({}, space=None))


def test_a_network_failure_while_resolving_a_space_id_is_transient() -> None:
    # Resolving "owner/space" goes through huggingface_hub's own httpx fork; offline, the
    # real lookup fails like this, but a test must not depend on reaching huggingface.co.
    import httpx2

    error = _map_error(httpx2.ConnectError("[Errno -2] Name or service not known"))

    assert isinstance(error, TransientError)

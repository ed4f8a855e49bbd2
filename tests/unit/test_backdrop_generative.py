"""Generative backdrops through their real clients against local servers keeping the real
contract: google-genai (Gemini's generateContent, Imagen's predict) and gradio_client (the
text-to-image Space template). A refusal or a failure falls back to the gradient and says why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from common.backends.backdrop import BackdropRequest, new_backdrop, render_with_fallback
from common.backends.backdrop.base import BackdropBackend
from common.backends.backdrop.gemini import GeminiBackdrop
from common.backends.backdrop.imagen import ImagenBackdrop
from common.backends.backdrop.space import SpaceBackdrop
from common.config import Settings
from common.errors import TransientError
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.gradio_app import launched
from tests.unit.test_tryon_backends import adc

__all__ = ["adc"]  # the fixture: Application Default Credentials that never refresh

PALETTE = ((20, 30, 110), (210, 170, 40))
SCENE = BackdropRequest("scene", "a sunlit oak floor by a window", (108, 192), PALETTE)


@pytest.fixture(scope="module")
def google_server() -> Iterator[FakeGemini]:
    with FakeGemini(api_key="gemini-key") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(google_server: FakeGemini) -> None:
    google_server.reset()
    google_server.answer_image = True
    google_server.block_reason = None
    google_server.imagen_refusal = None


def gemini(server: FakeGemini) -> BackdropBackend:
    settings = Settings.from_env(
        {},
        backdrop_backend="gemini",
        gemini_api_key="gemini-key",
        gemini_base_url=server.url,
        remote_timeout_s=10.0,
    )
    backend = new_backdrop(settings)
    assert isinstance(backend, GeminiBackdrop)
    return backend


def imagen(server: FakeGemini) -> BackdropBackend:
    settings = Settings.from_env(
        {},
        project="closet-test",
        backdrop_backend="imagen",
        gemini_base_url=server.url,
        remote_timeout_s=10.0,
    )
    backend = new_backdrop(settings)
    assert isinstance(backend, ImagenBackdrop)
    return backend


def test_gemini_draws_the_scene_from_words_at_the_frames_aspect(google_server: FakeGemini) -> None:
    drawn = render_with_fallback(gemini(google_server), SCENE)

    assert drawn.backend == "gemini" and drawn.fallback is None
    assert drawn.image.mode == "RGB" and drawn.image.size == (108, 192)
    (call,) = google_server.calls
    assert call.path.endswith("/models/gemini-2.5-flash-image:generateContent")
    assert "sunlit oak floor" in call.prompt and "#141e6e" in call.prompt
    assert call.images == []
    assert call.generation_config["responseModalities"] == ["IMAGE"]
    assert call.generation_config["imageConfig"]["aspectRatio"] == "9:16"


def test_gemini_answering_no_image_is_a_refusal_and_the_gradient_stands_in(
    google_server: FakeGemini,
) -> None:
    google_server.answer_image = False

    drawn = render_with_fallback(gemini(google_server), SCENE)

    assert drawn.backend == "gradient" and drawn.image.size == (108, 192)
    assert drawn.fallback is not None and drawn.fallback.startswith("gemini backdrop refused")
    assert "no image" in drawn.fallback


def test_a_blocked_prompt_says_why(google_server: FakeGemini) -> None:
    google_server.block_reason = "PROHIBITED_CONTENT"

    drawn = render_with_fallback(gemini(google_server), SCENE)

    assert drawn.backend == "gradient"
    assert drawn.fallback is not None and "blocked: PROHIBITED_CONTENT" in drawn.fallback


def test_a_transient_failure_is_retried_while_attempts_remain_then_falls_back(
    google_server: FakeGemini,
) -> None:
    backend = gemini(google_server)
    google_server.fail_next(2, 429)

    with pytest.raises(TransientError, match="429"):
        render_with_fallback(backend, SCENE, retry_transient=True)
    last = render_with_fallback(backend, SCENE)

    assert last.backend == "gradient"
    assert last.fallback is not None and last.fallback.startswith("gemini backdrop failed")


def test_white_never_calls_a_model(google_server: FakeGemini) -> None:
    request = BackdropRequest("white", None, (108, 135), PALETTE)

    drawn = render_with_fallback(gemini(google_server), request)

    assert drawn.backend == "gradient" and drawn.fallback is None
    assert google_server.calls == []


@pytest.mark.usefixtures("adc")
def test_imagen_generates_on_vertex_ai_at_the_nearest_aspect(google_server: FakeGemini) -> None:
    request = BackdropRequest("pastel", None, (1080, 1350), PALETTE)

    drawn = render_with_fallback(imagen(google_server), request)

    assert drawn.backend == "imagen" and drawn.fallback is None
    assert drawn.image.size == (1080, 1350)
    (call,) = google_server.calls
    assert "/projects/closet-test/locations/" in call.path
    assert call.path.endswith("/models/imagen-4.0-fast-generate-001:predict")
    assert "pastel" in call.body["instances"][0]["prompt"]
    parameters = call.body["parameters"]
    assert parameters["sampleCount"] == 1 and parameters["aspectRatio"] == "3:4"
    assert parameters["personGeneration"].lower() == "dont_allow"


@pytest.mark.usefixtures("adc")
def test_imagen_filtering_the_prompt_falls_back_with_its_reason(google_server: FakeGemini) -> None:
    google_server.imagen_refusal = "39322892: the prompt may depict a person"

    drawn = render_with_fallback(imagen(google_server), SCENE)

    assert drawn.backend == "gradient"
    assert drawn.fallback is not None and "imagen backdrop refused" in drawn.fallback
    assert "39322892" in drawn.fallback


@pytest.mark.usefixtures("adc")
def test_imagen_bad_request_falls_back_as_a_failure(google_server: FakeGemini) -> None:
    google_server.fail_next(1, 400, "Image generation failed with the following error: bad")

    drawn = render_with_fallback(imagen(google_server), SCENE)

    assert drawn.backend == "gradient"
    assert drawn.fallback is not None and "imagen backdrop failed" in drawn.fallback


# -- space (gradio_client) ----------------------------------------------------------------


def build_app() -> Any:
    """Hugging Face's text-to-image Space template: `infer` answers the image and its seed."""
    import gradio as gr

    def infer(
        prompt: str,
        negative_prompt: str,
        seed: float,
        randomize_seed: bool,
        width: float,
        height: float,
        guidance_scale: float,
        num_inference_steps: float,
    ) -> tuple[Image.Image, float]:
        if "forbidden" in prompt:
            raise gr.Error("NSFW content detected. Try a different prompt.")
        if int(width) % 32 or int(height) % 32 or max(width, height) > 1024:
            raise gr.Error(f"bad size {width}x{height}")
        size = (int(width) // 8, int(height) // 8)  # a small picture: the tests are quick
        if "black" in prompt:
            return Image.new("RGB", size), seed
        assert "people" in negative_prompt and not randomize_seed and num_inference_steps > 0
        return Image.new("RGB", size, (200, 170, 140)), seed

    with gr.Blocks(analytics_enabled=False) as app:
        prompt, negative = gr.Textbox(), gr.Textbox()
        seed, randomize = gr.Number(), gr.Checkbox()
        width, height, guidance, steps = gr.Number(), gr.Number(), gr.Number(), gr.Number()
        out = gr.Image(type="pil", format="png")
        used = gr.Number()
        gr.Button().click(
            infer,
            [prompt, negative, seed, randomize, width, height, guidance, steps],
            [out, used],
            api_name="infer",
        )
    return app


@pytest.fixture(scope="module")
def space_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with launched(build_app, tmp_path_factory.mktemp("gradio")) as url:
        yield url


@pytest.fixture(scope="module")
def space(space_url: str) -> Iterator[SpaceBackdrop]:
    settings = Settings.from_env(
        {}, backdrop_backend="space", backdrop_space=space_url, remote_timeout_s=30.0
    )
    backend = new_backdrop(settings)
    assert isinstance(backend, SpaceBackdrop)
    yield backend
    backend.close()


@pytest.mark.slow
def test_space_draws_at_sdxl_size_and_is_cropped_to_the_frame(space: SpaceBackdrop) -> None:
    drawn = render_with_fallback(space, SCENE)

    assert drawn.backend == "space" and drawn.fallback is None
    assert drawn.image.size == (108, 192)
    assert np.abs(np.asarray(drawn.image, dtype=np.int16) - (200, 170, 140)).max() <= 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("prompt", "said"),
    [("a forbidden place", "NSFW content detected"), ("a black room", "blacked-out")],
)
def test_space_refusals_fall_back_to_the_gradient(
    space: SpaceBackdrop, prompt: str, said: str
) -> None:
    request = BackdropRequest("scene", prompt, (108, 135), PALETTE)

    drawn = render_with_fallback(space, request)

    assert drawn.backend == "gradient" and drawn.image.size == (108, 135)
    assert drawn.fallback is not None and drawn.fallback.startswith("space backdrop refused")
    assert said in drawn.fallback

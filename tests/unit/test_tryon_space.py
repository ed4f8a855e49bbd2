"""The `space` try-on backend through gradio_client against a local app with IDM-VTON's API."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from common.backends.tryon import TryonRequest, new_tryon
from common.backends.tryon.space import SpaceTryon
from common.config import Settings
from common.errors import BackendUnavailable, TransientError
from tests.fakes.gradio_app import launched
from tests.unit.test_tryon_backends import RED, Said, red_share, request

pytestmark = pytest.mark.slow


def build_app() -> Any:
    import gradio as gr

    def tryon(
        editor: dict[str, Any],
        garment: Image.Image,
        description: str,
        auto_mask: bool,
        auto_crop: bool,
        steps: float,
        seed: float,
    ) -> tuple[Image.Image, Image.Image]:
        if "quota" in description:
            raise gr.Error("You have exceeded your GPU quota (60s left). Try again in 5 minutes.")
        if "broken" in description:
            raise ValueError("the garment could not be parsed")
        if "slow" in description:
            time.sleep(3.0)
        person = editor["background"].convert("RGB")
        assert auto_mask and not auto_crop and int(steps) > 0
        dressed = person.copy()
        width = person.width // 3
        dressed.paste(garment.convert("RGB").resize((width, width)), (width, person.height // 4))
        return dressed, Image.new("L", person.size, 0)

    with gr.Blocks(analytics_enabled=False) as app:
        editor = gr.ImageEditor(type="pil")
        garment = gr.Image(type="pil")
        text = gr.Textbox()
        mask, crop = gr.Checkbox(), gr.Checkbox()
        steps, seed = gr.Number(), gr.Number()
        out, masked = gr.Image(type="pil", format="png"), gr.Image(type="pil", format="png")
        gr.Button().click(
            tryon,
            [editor, garment, text, mask, crop, steps, seed],
            [out, masked],
            api_name="tryon",
            concurrency_limit=1,
        )
    return app


@pytest.fixture(scope="module")
def space_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with launched(build_app, tmp_path_factory.mktemp("gradio")) as url:
        yield url


@pytest.fixture
def backend(space_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SpaceTryon]:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    settings = Settings.from_env(
        {}, tryon_backend="space", tryon_space=space_url, remote_timeout_s=20.0
    )
    made = new_tryon(settings)
    assert isinstance(made, SpaceTryon)
    yield made
    made.close()


def described(text: str) -> TryonRequest:
    return dataclasses.replace(request(), description=text)


def test_the_space_dresses_the_person(backend: SpaceTryon) -> None:
    said = Said()

    dressed = backend.generate(request(), said)

    assert dressed.size == (300, 450) and red_share(dressed) > 0.02
    assert said  # the Space's state was reported (a fast job may finish while it starts)


def test_a_busy_space_reports_the_queue_position(backend: SpaceTryon) -> None:
    first_said, second_said = Said(), Said()
    first = threading.Thread(target=backend.generate, args=(described("slow"), first_said))
    first.start()
    deadline = time.monotonic() + 20
    while "Dressing the person (Space)" not in first_said and time.monotonic() < deadline:
        time.sleep(0.05)
    # The first holds the app's only worker for 3 s: the second waits in its queue.
    backend.generate(described("slow"), second_said)
    first.join()

    assert any("queue (position" in text for text in second_said), second_said


def test_a_quota_error_is_transient(backend: SpaceTryon) -> None:
    with pytest.raises(TransientError, match="quota"):
        backend.generate(described("quota"), Said())


def test_an_app_error_is_permanent(backend: SpaceTryon) -> None:
    with pytest.raises(BackendUnavailable):
        backend.generate(described("broken"), Said())


def test_the_garment_reaches_the_space_as_an_image(backend: SpaceTryon) -> None:
    dressed = backend.generate(request(), Said())

    patch = np.asarray(dressed)[450 // 4 + 20, 300 // 2]
    assert np.abs(patch.astype(int) - RED).max() < 40

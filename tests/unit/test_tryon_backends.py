"""Every try-on backend through its real client against a local server keeping the contract."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.backends.tryon import TryonBackend, TryonRequest, new_tryon
from common.backends.tryon.fashn import FashnTryon
from common.backends.tryon.gemini import GeminiTryon
from common.backends.tryon.overlay import OverlayTryon
from common.backends.tryon.vertex import VertexTryon
from common.config import Settings
from common.errors import (
    BackendRefused,
    BackendUnavailable,
    ConfigurationError,
    NoPersonFound,
    TransientError,
)
from tests.fakes.fashn_server import FakeFashn
from tests.fakes.gemini_server import FakeGemini
from tests.synthetic import person_photo

RED = (200, 30, 40)


def request(person: Image.Image | None = None, category: str = "tops") -> TryonRequest:
    garment = Image.new("RGB", (120, 150), "white")
    garment.paste(RED, (10, 10, 110, 140))
    return TryonRequest(
        person=person or person_photo(300, 450),
        garment=garment,
        category=category,
        description="red t-shirt",
    )


def red_share(image: Image.Image) -> float:
    pixels = np.asarray(image.convert("RGB")).astype(int)
    return float((np.abs(pixels - RED).max(axis=-1) < 30).mean())


class Said(list[str]):
    """The progress texts a backend reported."""

    def __call__(self, text: str) -> None:
        self.append(text)


# -- fashn -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashn_server() -> Iterator[FakeFashn]:
    with FakeFashn(polls=3) as server:
        yield server


@pytest.fixture
def fashn(fashn_server: FakeFashn) -> FashnTryon:
    fashn_server.reset()
    fashn_server.polls = 3
    settings = Settings.from_env(
        {},
        tryon_backend="fashn",
        fashn_api_key=fashn_server.api_key,
        fashn_base_url=fashn_server.url,
        tryon_poll_s=0.01,
        remote_timeout_s=10.0,
    )
    backend = new_tryon(settings)
    assert isinstance(backend, FashnTryon)
    return backend


def test_fashn_polls_through_its_states_to_the_dressed_person(
    fashn: FashnTryon, fashn_server: FakeFashn
) -> None:
    said = Said()

    dressed = fashn.generate(request(), said)

    assert dressed.mode == "RGB" and dressed.size == (300, 450)
    assert red_share(dressed) > 0.02
    assert said == [
        "Starting the try-on",
        "Waiting in FASHN's queue",
        "Dressing the person (FASHN)",
    ]
    (run,) = fashn_server.runs
    assert run["category"] == "tops" and run["return_base64"] is True
    assert run["garment_photo_type"] == "flat-lay" and run["modelName"] == "tryon-v1.6"


def test_fashn_a_slow_prediction_is_polled_until_it_completes(
    fashn: FashnTryon, fashn_server: FakeFashn
) -> None:
    fashn_server.polls = 12
    said = Said()

    fashn.generate(request(), said)

    assert len(fashn_server.runs) == 1
    assert said[-1] == "Dressing the person (FASHN)"


@pytest.mark.parametrize(
    ("status", "error", "raised"),
    [
        (429, "RateLimitExceeded", TransientError),
        (429, "ConcurrencyLimitExceeded", TransientError),
        (429, "OutOfCredits", BackendUnavailable),
        (500, "InternalServerError", TransientError),
        (503, "InternalServerError", TransientError),
        (400, "BadRequest", BackendUnavailable),
    ],
)
def test_fashn_api_errors_are_told_apart(
    fashn: FashnTryon, fashn_server: FakeFashn, status: int, error: str, raised: type[Exception]
) -> None:
    fashn_server.fail_next(1, status, error)

    with pytest.raises(raised) as caught:
        fashn.generate(request(), Said())

    assert error in str(caught.value) or str(status) in str(caught.value)
    assert fashn_server.runs == []


def test_fashn_a_wrong_key_is_permanent(fashn_server: FakeFashn) -> None:
    settings = Settings.from_env(
        {}, tryon_backend="fashn", fashn_api_key="wrong", fashn_base_url=fashn_server.url
    )

    with pytest.raises(BackendUnavailable, match="UnauthorizedAccess"):
        new_tryon(settings).generate(request(), Said())


@pytest.mark.parametrize(
    ("name", "raised"),
    [
        ("ContentModerationError", BackendRefused),
        ("PipelineError", TransientError),
        ("ImageLoadError", BackendUnavailable),
    ],
)
def test_fashn_runtime_errors_map_to_codes(
    fashn: FashnTryon, fashn_server: FakeFashn, name: str, raised: type[Exception]
) -> None:
    fashn_server.runtime_error = (name, f"fake {name}")

    with pytest.raises(raised, match=name):
        fashn.generate(request(), Said())


def test_fashn_a_photo_without_a_pose_is_no_person(fashn: FashnTryon) -> None:
    empty = Image.new("RGB", (300, 450), (236, 234, 230))

    with pytest.raises(NoPersonFound, match="PoseError"):
        fashn.generate(request(empty), Said())


def test_fashn_without_a_key_fails_at_startup() -> None:
    with pytest.raises(ConfigurationError, match="FASHN_API_KEY"):
        new_tryon(Settings.from_env({}, tryon_backend="fashn"))


def test_fashn_status_errors_while_polling_are_transient(
    fashn: FashnTryon, fashn_server: FakeFashn
) -> None:
    class FailPolls(Said):
        def __call__(self, text: str) -> None:
            super().__call__(text)
            fashn_server.fail_next(1, 502)

    with pytest.raises(TransientError, match="502"):
        fashn.generate(request(), FailPolls())


# -- vertex and gemini (google-genai) ----------------------------------------------------


@pytest.fixture(scope="module")
def google_server() -> Iterator[FakeGemini]:
    with FakeGemini(api_key="gemini-key") as server:
        yield server


@pytest.fixture
def adc(tmp_path: Path, google_server: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    """Application Default Credentials holding a token valid for years: nothing is refreshed
    (google-auth always refreshes user credentials at Google's own token endpoint)."""
    path = tmp_path / "adc.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "id",
                "client_secret": "secret",
                "refresh_token": "refresh",
                "token": "local-token",
                "expiry": "2099-01-01T00:00:00Z",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    google_server.reset()
    google_server.tryon_refusal = None
    google_server.answer_image = True


def vertex(google_server: FakeGemini) -> TryonBackend:
    settings = Settings.from_env(
        {},
        project="closet-test",
        tryon_backend="vertex",
        gemini_base_url=google_server.url,
        remote_timeout_s=10.0,
    )
    backend = new_tryon(settings)
    assert isinstance(backend, VertexTryon)
    return backend


@pytest.mark.usefixtures("adc")
def test_vertex_dresses_the_person_through_recontext_image(google_server: FakeGemini) -> None:
    said = Said()

    dressed = vertex(google_server).generate(request(), said)

    assert dressed.size == (300, 450) and red_share(dressed) > 0.02
    (call,) = google_server.calls
    assert call.path.endswith("/models/virtual-try-on-preview-08-04:predict")
    assert "/projects/closet-test/locations/" in call.path
    assert call.body["parameters"]["sampleCount"] == 1
    assert said == ["Dressing the person (Vertex AI)"]


@pytest.mark.usefixtures("adc")
def test_vertex_a_filtered_result_is_a_coded_refusal(google_server: FakeGemini) -> None:
    google_server.tryon_refusal = "56562880: person photo looks like a minor"

    with pytest.raises(BackendRefused, match="56562880"):
        vertex(google_server).generate(request(), Said())


@pytest.mark.usefixtures("adc")
@pytest.mark.parametrize(("status", "raised"), [(503, TransientError), (400, BackendUnavailable)])
def test_vertex_errors(google_server: FakeGemini, status: int, raised: type[Exception]) -> None:
    google_server.fail_next(1, status)

    with pytest.raises(raised):
        vertex(google_server).generate(request(), Said())


def gemini(google_server: FakeGemini) -> TryonBackend:
    settings = Settings.from_env(
        {},
        tryon_backend="gemini",
        gemini_api_key="gemini-key",
        gemini_base_url=google_server.url,
        remote_timeout_s=10.0,
    )
    backend = new_tryon(settings)
    assert isinstance(backend, GeminiTryon)
    return backend


@pytest.mark.usefixtures("adc")
def test_gemini_sends_both_photos_and_an_instruction(google_server: FakeGemini) -> None:
    dressed = gemini(google_server).generate(request(category="bottoms"), Said())

    assert dressed.mode == "RGB"
    (call,) = google_server.calls
    assert len(call.images) == 2
    assert call.images[0].size == (300, 450)
    assert "red t-shirt" in call.prompt and "bottoms" in call.prompt
    assert call.generation_config["responseModalities"] == ["IMAGE"]


@pytest.mark.usefixtures("adc")
def test_gemini_an_answer_without_an_image_is_a_refusal(google_server: FakeGemini) -> None:
    google_server.answer_image = False

    with pytest.raises(BackendRefused, match="no image"):
        gemini(google_server).generate(request(), Said())


@pytest.mark.usefixtures("adc")
@pytest.mark.parametrize("backend", [vertex, gemini])
def test_an_unreadable_image_is_a_permanent_error_naming_the_model(
    google_server: FakeGemini, backend: Callable[[FakeGemini], TryonBackend]
) -> None:
    google_server.garble_images = True
    tryon = backend(google_server)

    with pytest.raises(BackendUnavailable) as raised:
        tryon.generate(request(), Said())

    assert raised.value.message.startswith(f"{tryon.model}: ")  # type: ignore[attr-defined]
    assert "unreadable image" in raised.value.message
    assert not isinstance(raised.value, TransientError), "a redelivery would pay again"


@pytest.mark.usefixtures("adc")
def test_gemini_429_is_transient(google_server: FakeGemini) -> None:
    google_server.fail_next(1, 429)

    with pytest.raises(TransientError, match="429"):
        gemini(google_server).generate(request(), Said())


# -- overlay (no model) ------------------------------------------------------------------


def test_overlay_lays_the_garment_over_the_persons_upper_body() -> None:
    person = person_photo(300, 450)
    dressed = OverlayTryon().generate(request(person), Said())

    red = np.abs(np.asarray(dressed).astype(int) - RED).max(axis=-1) < 30
    rows = np.flatnonzero(red.any(axis=1))
    assert red.mean() > 0.05
    # The top sits between the shoulders and the hips, not on the head or the legs.
    assert rows[0] > 0.15 * 450 and rows[-1] < 0.6 * 450


def test_overlay_refuses_a_photo_with_nobody_in_it() -> None:
    empty = Image.new("RGB", (300, 450), (236, 234, 230))

    with pytest.raises(NoPersonFound):
        OverlayTryon().generate(request(empty), Said())

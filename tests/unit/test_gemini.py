"""The gemini backend, through the real google-genai client, against the local fake API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from common.backends.generative import new_generative
from common.backends.generative.gemini import GeminiBackend
from common.config import Settings
from common.errors import BackendUnavailable, ConfigurationError, TransientError
from common.schemas import Attributes
from tests.fakes.gemini_server import FakeGemini

TAGGING = "gemini-tagging-test"
COMPLETION = "gemini-completion-test-image"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # google-genai reads these itself; a developer's shell must not change what is tested.
    for name in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_GENAI_HTTP_CLIENT",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FakeGemini]:
    with FakeGemini(api_key="test-key") as fake:
        yield fake


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "gemini_api_key": "test-key",
        "gemini_base_url": url,
        "tagging_model": TAGGING,
        "completion_model": COMPLETION,
        "remote_timeout_s": 10.0,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


def backend_for(server: FakeGemini, **overrides: Any) -> GeminiBackend:
    return GeminiBackend.from_settings(settings_for(server.url, **overrides))


def garment_crop(width: int = 40, height: int = 30) -> Image.Image:
    """A red garment on a transparent background, as the segment stage crops it."""
    crop = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    crop.paste((200, 20, 20, 255), (5, 5, width - 5, height))
    return crop


def test_tag_returns_the_attributes_the_model_answered(server: FakeGemini) -> None:
    server.attributes = {
        "category": "jeans",
        "colors": ["blue"],
        "pattern": "solid",
        "seasons": ["autumn", "winter"],
    }
    backend = backend_for(server)

    attributes = backend.tag(garment_crop(), "Pants")

    assert attributes == Attributes(
        category="jeans", colors=["blue"], pattern="solid", seasons=["autumn", "winter"]
    )


def test_tag_sends_the_crop_inline_with_the_label_and_a_response_schema(
    server: FakeGemini,
) -> None:
    backend = backend_for(server)
    crop = garment_crop(40, 30)

    backend.tag(crop, "Upper-clothes")

    [call] = server.calls_for(TAGGING)
    [sent] = call.images
    assert sent.format == "PNG"
    assert sent.size == (40, 30)
    assert sent.mode == "RGBA"
    assert sent.tobytes() == crop.tobytes()
    assert "Upper-clothes" in call.prompt
    config = call.generation_config
    assert config["responseMimeType"] == "application/json"
    assert config["temperature"] == 0
    schema = config.get("responseSchema") or config["responseJsonSchema"]
    assert set(schema["properties"]) == {"category", "colors", "pattern", "seasons"}


def test_every_request_carries_the_api_key_header(server: FakeGemini) -> None:
    backend = backend_for(server)

    backend.tag(garment_crop(), "Dress")
    backend.complete(garment_crop(), "Dress", ["bottom"])

    assert [call.api_key for call in server.calls] == ["test-key", "test-key"]


def test_a_wrong_api_key_is_a_permanent_error(server: FakeGemini) -> None:
    backend = backend_for(server, gemini_api_key="wrong-key")

    with pytest.raises(BackendUnavailable) as raised:
        backend.tag(garment_crop(), "Dress")

    assert raised.value.code == "backend_unavailable"
    assert not raised.value.retryable


def test_complete_returns_the_model_image_as_rgba(server: FakeGemini) -> None:
    server.pad = 16
    backend = backend_for(server)

    completed = backend.complete(garment_crop(40, 30), "Skirt", ["left", "bottom"])

    assert completed.mode == "RGBA"
    assert completed.size == (40 + 32, 30 + 32)
    assert completed.getpixel((0, 0)) == (255, 255, 255, 255)
    assert completed.getpixel((16 + 20, 16 + 20)) == (200, 20, 20, 255)


def test_complete_asks_an_image_model_naming_the_label_and_the_cut_edges(
    server: FakeGemini,
) -> None:
    backend = backend_for(server)

    backend.complete(garment_crop(), "Skirt", ["bottom", "left"])

    [call] = server.calls_for(COMPLETION)
    assert call.generation_config["responseModalities"] == ["IMAGE"]
    assert len(call.images) == 1
    assert "Skirt" in call.prompt
    assert "left and bottom edges" in call.prompt
    assert server.calls_for(TAGGING) == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_overload_and_server_errors_are_transient_and_not_retried_in_process(
    server: FakeGemini, status: int
) -> None:
    server.fail_next(1, status)
    backend = backend_for(server)

    with pytest.raises(TransientError) as raised:
        backend.tag(garment_crop(), "Dress")

    assert raised.value.retryable
    # Pub/Sub redelivers: the SDK must not retry on its own.
    assert len(server.calls_for(TAGGING)) == 1


def test_after_a_transient_failure_the_next_call_succeeds(server: FakeGemini) -> None:
    server.fail_next(1, 429)
    backend = backend_for(server)
    with pytest.raises(TransientError):
        backend.tag(garment_crop(), "Dress")

    attributes = backend.tag(garment_crop(), "Dress")

    assert attributes.category == "t-shirt"
    assert [call.status for call in server.calls] == [429, 200]


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_permanent(server: FakeGemini, status: int) -> None:
    server.fail_next(1, status)
    backend = backend_for(server)

    with pytest.raises(BackendUnavailable) as raised:
        backend.complete(garment_crop(), "Dress", ["top"])

    assert raised.value.code == "backend_unavailable"
    assert not raised.value.retryable
    assert not isinstance(raised.value, TransientError)


def test_an_answer_without_an_image_is_a_permanent_error(server: FakeGemini) -> None:
    server.answer_image = False
    backend = backend_for(server)

    with pytest.raises(BackendUnavailable) as raised:
        backend.complete(garment_crop(), "Dress", ["top"])

    assert "no image" in raised.value.message


def test_an_unreadable_image_is_a_permanent_error_naming_the_model(server: FakeGemini) -> None:
    server.garble_images = True
    backend = backend_for(server)

    with pytest.raises(BackendUnavailable) as raised:
        backend.complete(garment_crop(), "Dress", ["top"])

    assert raised.value.message.startswith(f"{backend.completion_model}: ")
    assert "unreadable image" in raised.value.message
    assert not isinstance(raised.value, TransientError), "a redelivery would pay again"


def test_an_unparsable_tagging_answer_is_a_permanent_error(server: FakeGemini) -> None:
    server.answer_text = '{"category": "shirt"'
    backend = backend_for(server)

    with pytest.raises(BackendUnavailable):
        backend.tag(garment_crop(), "Upper-clothes")


def test_a_time_out_is_transient(server: FakeGemini) -> None:
    server.delay_s = 2.0
    backend = backend_for(server, remote_timeout_s=0.2)

    with pytest.raises(TransientError):
        backend.tag(garment_crop(), "Dress")


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    backend = GeminiBackend.from_settings(settings_for(f"http://127.0.0.1:{closed_port}"))

    with pytest.raises(TransientError):
        backend.tag(garment_crop(), "Dress")


def test_no_credentials_is_a_configuration_error() -> None:
    settings = Settings.from_env({})

    with pytest.raises(ConfigurationError):
        GeminiBackend.from_settings(settings)


def test_vertex_ai_without_application_default_credentials_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    settings = Settings.from_env({}, use_vertexai=True, project="closet-test")

    with pytest.raises(ConfigurationError):
        GeminiBackend.from_settings(settings)


def test_the_factory_skips_generation_without_credentials() -> None:
    settings = Settings.from_env({})

    assert new_generative(settings) is None


def test_the_factory_builds_the_gemini_backend_with_an_api_key(server: FakeGemini) -> None:
    settings = settings_for(server.url)

    backend = new_generative(settings)

    assert isinstance(backend, GeminiBackend)
    assert backend.name == "gemini"

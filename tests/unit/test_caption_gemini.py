"""The gemini caption backend through google-genai against a local server keeping the Gemini
API's contract: structured output in the requested language; refusals and answers that do not
parse are coded errors, never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from PIL import Image, ImageDraw

from common.backends.caption import STORY_MAX, CaptionBackend, new_caption
from common.backends.caption.gemini import GeminiCaption
from common.config import Settings
from common.errors import BackendRefused, CaptionInvalid, TransientError
from tests.fakes.gemini_server import DEFAULT_CAPTION, FakeGemini


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGemini]:
    with FakeGemini(api_key="gemini-key") as fake:
        yield fake


@pytest.fixture
def backend(server: FakeGemini) -> CaptionBackend:
    server.reset()
    server.answer_text = None
    server.block_reason = None
    server.caption = dict(DEFAULT_CAPTION)
    settings = Settings.from_env(
        {}, gemini_api_key="gemini-key", gemini_base_url=server.url, remote_timeout_s=10.0
    )
    made = new_caption(settings)
    assert isinstance(made, GeminiCaption)
    return made


def shot() -> Image.Image:
    image = Image.new("RGB", (1080, 1350), (230, 225, 220))
    ImageDraw.Draw(image).rectangle((300, 300, 780, 1000), fill=(20, 30, 110))
    return image


def test_a_caption_from_the_facts_and_the_image_in_the_asked_language(
    backend: CaptionBackend, server: FakeGemini
) -> None:
    caption = backend.caption(shot(), "Cotton tee, size M, worn twice.", "French")

    assert caption is not None
    assert caption.title == "Navy striped tee" and caption.language == "French"
    assert caption.hashtags == ["#stripes", "#tee", "#preloved"]
    assert caption.alt_text.startswith("A navy")
    (call,) = server.calls
    assert call.model == "gemini-2.5-flash"
    assert "French" in call.prompt and "Cotton tee, size M, worn twice." in call.prompt
    (image,) = call.images
    assert max(image.size) == 768  # sent small: enough to describe
    config = call.generation_config
    assert config["responseMimeType"] == "application/json"
    schema = config.get("responseSchema") or config["responseJsonSchema"]
    assert {"title", "story", "hashtags", "alt_text"} <= set(schema["properties"])


def test_no_facts_is_said_so_rather_than_left_empty(
    backend: CaptionBackend, server: FakeGemini
) -> None:
    backend.caption(shot(), None, "en")

    assert "Facts: none given" in server.calls[0].prompt


def test_a_long_story_is_cut_to_the_limit(backend: CaptionBackend, server: FakeGemini) -> None:
    server.caption = {**DEFAULT_CAPTION, "story": "It is soft and warm. " * 40}

    caption = backend.caption(shot(), "wool", "en")

    assert caption is not None and 0 < len(caption.story) <= STORY_MAX


@pytest.mark.parametrize(
    "answer",
    ["Sure! Here is a caption: a lovely tee", json.dumps({"title": "only a title"}), "[]", ""],
)
def test_an_answer_that_does_not_parse_is_coded(
    backend: CaptionBackend, server: FakeGemini, answer: str
) -> None:
    server.answer_text = answer

    with pytest.raises(CaptionInvalid) as raised:
        backend.caption(shot(), "wool", "en")

    assert raised.value.code == "caption_invalid" and not raised.value.retryable
    assert "gemini-2.5-flash answered no valid caption" in raised.value.message


def test_a_blocked_request_is_a_refusal(backend: CaptionBackend, server: FakeGemini) -> None:
    server.block_reason = "SAFETY"

    with pytest.raises(BackendRefused, match="blocked: SAFETY") as raised:
        backend.caption(shot(), "wool", "en")

    assert raised.value.code == "backend_refused"


def test_an_overloaded_model_is_transient(backend: CaptionBackend, server: FakeGemini) -> None:
    server.fail_next(1, 503)

    with pytest.raises(TransientError, match="503"):
        backend.caption(shot(), "wool", "en")

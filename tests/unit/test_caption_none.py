"""Caption backend choice and the caption's shape (no model)."""

from __future__ import annotations

from PIL import Image

from common.backends.caption import CaptionAnswer, caption_from_answer, new_caption
from common.backends.caption.base import shorten
from common.config import Settings


def test_without_credentials_there_is_no_caption() -> None:
    backend = new_caption(Settings.from_env({}))

    assert backend.name == "none"
    assert backend.caption(Image.new("RGB", (8, 8)), "a wool coat", "en") is None


def test_with_credentials_the_default_is_gemini() -> None:
    assert Settings.from_env({}, gemini_api_key="k").resolved_caption_backend == "gemini"
    assert (
        Settings.from_env({}, gemini_api_key="k", caption_backend="NONE").resolved_caption_backend
        == "none"
    )


def test_a_caption_is_tidied_into_its_limits() -> None:
    story = "Soft merino, size M. " * 20
    answer = CaptionAnswer(
        title=" Merino jumper ", story=story, hashtags=["merino", "#knit", "# knit"], alt_text="x"
    )

    caption = caption_from_answer(answer, "en")

    assert len(caption.story) <= 300 and caption.story.endswith(".")
    assert caption.title == "Merino jumper"
    assert caption.hashtags == ["#merino", "#knit"]
    assert caption.to_wire()["altText"] == "x" and caption.language == "en"


def test_shorten_cuts_at_a_word_when_there_is_no_sentence() -> None:
    text = "word " * 100

    short = shorten(text.strip(), 50)

    assert len(short) <= 50 and short.endswith("…") and " wor…" not in short

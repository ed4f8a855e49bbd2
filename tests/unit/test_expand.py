"""The expand stage through the pipeline, with the real google-genai client and a local API."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from common.config import Settings
from common.pipeline import LocalPipeline
from common.schemas import JobStatus, StageStatus
from tests import badinputs
from tests.fakes.gemini_server import DEFAULT_ATTRIBUTES, FakeGemini


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key="test-key") as server:
        yield server


@pytest.fixture
def server(gemini: FakeGemini) -> FakeGemini:
    gemini.reset()
    return gemini


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_pipeline(tmp_path: Path, server: FakeGemini, **overrides: object) -> LocalPipeline:
    settings = Settings.from_env(
        {},
        local_root=tmp_path / "local",
        gemini_api_key="test-key",
        gemini_base_url=server.url,
        **overrides,
    )
    # Every backend comes from the settings' factories: classic, single, gemini.
    return LocalPipeline(settings, results_dir=tmp_path / "out", retry_delay_s=0)


def cut_off_photo() -> bytes:
    """The shirt runs off the bottom of the frame."""
    return jpeg(badinputs.garment_photo(640, 480).crop((0, 0, 640, 330)))


def test_garment_inside_the_frame_is_tagged_without_completion(tmp_path, server):
    pipeline = make_pipeline(tmp_path, server)

    job = pipeline.process(jpeg(badinputs.garment_photo()), "shirt.jpg")

    assert job.status is JobStatus.DONE
    assert len(server.calls_for("gemini-2.5-flash")) == 1
    assert server.calls_for("gemini-2.5-flash-image") == []
    assert job.result is not None
    item = job.result.items[0]
    assert item.attributes is not None
    assert item.attributes.model_dump() == DEFAULT_ATTRIBUTES
    assert item.completed is False
    assert job.stages["expand"].status is StageStatus.DONE
    assert job.stages["expand"].backend == "gemini"


def test_garment_cut_off_by_the_frame_is_completed_then_tagged(tmp_path, server):
    pipeline = make_pipeline(tmp_path, server)

    job = pipeline.process(cut_off_photo(), "cropped.jpg")

    [completion] = server.calls_for("gemini-2.5-flash-image")
    assert "bottom" in completion.prompt
    assert len(server.calls_for("gemini-2.5-flash")) == 1
    assert job.result is not None
    item = job.result.items[0]
    assert item.completed is True
    with Image.open(tmp_path / "out" / item.image.path) as image:
        alpha = image.getchannel("A")
        # The completed garment was keyed out of the model's plain backdrop.
        assert alpha.getextrema() == (0, 255)


def test_completion_can_be_turned_off(tmp_path, server):
    pipeline = make_pipeline(tmp_path, server, completion=False)

    job = pipeline.process(cut_off_photo(), "cropped.jpg")

    assert server.calls_for("gemini-2.5-flash-image") == []
    assert job.result is not None and job.result.items[0].completed is False
    assert job.result.items[0].attributes is not None


def test_refusal_skips_the_enrichment_but_keeps_the_garments(tmp_path, server):
    pipeline = make_pipeline(tmp_path, server)
    server.fail_next(1, 400, "Request contains an invalid argument.")

    job = pipeline.process(jpeg(badinputs.garment_photo()), "shirt.jpg")

    assert job.status is JobStatus.DONE
    assert job.stages["expand"].status is StageStatus.SKIPPED
    assert "invalid argument" in (job.stages["expand"].reason or "")
    assert job.result is not None and job.result.items[0].attributes is None


def test_refused_result_is_not_cached_so_a_retry_gets_its_tags(tmp_path, server):
    pipeline = make_pipeline(tmp_path, server)
    photo = jpeg(badinputs.garment_photo())
    server.fail_next(1, 400, "Request contains an invalid argument.")
    pipeline.process(photo, "shirt.jpg")

    again = pipeline.process(photo, "shirt-again.jpg")

    assert again.cache_hit is False
    assert again.result is not None and again.result.items[0].attributes is not None


def test_rate_limit_is_retried_and_then_succeeds(tmp_path, server):
    pipeline = make_pipeline(tmp_path, server)
    server.fail_next(1, 429, "Resource has been exhausted")

    job = pipeline.process(jpeg(badinputs.garment_photo()), "shirt.jpg")

    assert job.status is JobStatus.DONE
    assert job.stages["expand"].attempts == 2
    assert job.result is not None and job.result.items[0].attributes is not None
    assert [call.status for call in server.calls] == [429, 200]

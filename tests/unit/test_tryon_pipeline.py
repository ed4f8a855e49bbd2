"""The try-on pipeline in one process: a closet job, then a try-on of its item."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Self

import pytest
from PIL import Image

from common.backends.lazy import Backends
from common.backends.tryon import Progress, TryonBackend, TryonRequest
from common.backends.tryon.overlay import OverlayTryon
from common.config import Settings
from common.pipeline import LocalPipeline
from common.pipelines import PIPELINES, pipeline_for_upload
from common.schemas import Job, JobStatus, StageStatus
from tests.fakes.fashn_server import FakeFashn
from tests.synthetic import person_photo

ROOT = Path(__file__).resolve().parents[2]
SHIRT = (ROOT / "tests" / "data" / "sample-shirt.jpg").read_bytes()


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


PERSON = jpeg(person_photo(480, 720))


class CountingTryon(TryonBackend):
    """The overlay backend, counting the calls that reach it (what a paid API would bill)."""

    name = "counting"
    garment_on = "transparent"

    def __init__(self) -> None:
        self.inner = OverlayTryon()
        self.calls = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def generate(self, request: TryonRequest, progress: Progress) -> Image.Image:
        self.calls += 1
        progress("Dressing the person (counting)")
        return self.inner.generate(request, progress)


def make(tmp_path: Path, tryon: TryonBackend | None = None, **overrides: object) -> LocalPipeline:
    settings = Settings.from_env({}, local_root=tmp_path / "local", **overrides)
    backends = Backends(settings, generative=None, tryon=tryon)
    return LocalPipeline(settings, results_dir=tmp_path / "out", backends=backends, retry_delay_s=0)


def closet_item(pipeline: LocalPipeline, uid: str = "alice") -> str:
    job = pipeline.process(SHIRT, "shirt.jpg", uid)
    assert job.status is JobStatus.DONE, job.error
    return f"{job.id}/items/0"


def tryon(
    pipeline: LocalPipeline,
    garment: str,
    uid: str = "alice",
    person: bytes = PERSON,
    **metadata: str,
) -> Job:
    return pipeline.process(
        person, "me.jpg", uid, folder="tryon/", metadata={"garment": garment, **metadata}
    )


@pytest.fixture
def counting() -> CountingTryon:
    return CountingTryon()


@pytest.fixture
def pipeline(tmp_path: Path, counting: CountingTryon) -> LocalPipeline:
    return make(tmp_path, counting)


def test_uploads_under_tryon_start_a_tryon_job() -> None:
    assert pipeline_for_upload("users/alice/tryon/me.jpg").kind == "tryon"
    assert pipeline_for_upload("users/alice/me.jpg").kind == "closet"
    assert pipeline_for_upload("users/alice/photos/tryon/me.jpg").kind == "closet"


def test_a_tryon_of_a_closet_item_completes_with_image_and_thumbnail(
    pipeline: LocalPipeline, counting: CountingTryon, tmp_path: Path
) -> None:
    item = closet_item(pipeline)
    seen: list[Job] = []

    job = pipeline_with_listener(pipeline, item, seen)

    assert job.status is JobStatus.DONE, job.error
    assert job.kind == "tryon" and job.inputs is not None
    assert job.inputs.garment == item and job.inputs.person == job.source.name
    assert set(job.stages) == set(PIPELINES["tryon"].stages)
    assert all(record.status is StageStatus.DONE for record in job.stages.values())
    assert job.stages["tryon_generate"].backend == "counting"
    assert job.result is not None and job.result.cutout is None
    (result,) = job.result.items
    assert result.label == "auto"  # from the item's label: "garment" in single-garment mode
    assert result.image.path == f"tryon/{job.id}/tryon.webp"
    assert (tmp_path / "out" / result.image.path).exists()
    assert (tmp_path / "out" / result.thumbnail.path).exists()
    assert max(result.thumbnail.width, result.thumbnail.height) <= 256
    assert counting.calls == 1
    progress = [snapshot.progress for snapshot in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert "Dressing the person (counting)" in [snapshot.message for snapshot in seen]
    # Try-ons expire sooner than closet jobs (CLOSET_TRYON_TTL_DAYS).
    assert job.expires_at is not None
    assert job.expires_at - job.created_at == timedelta(days=7)


def pipeline_with_listener(pipeline: LocalPipeline, item: str, seen: list[Job]) -> Job:
    event = pipeline.upload(
        PERSON, "me.jpg", "alice", "1", folder="tryon/", metadata={"garment": item}
    )
    started = pipeline.start(event)
    unsubscribe = pipeline.jobs.listen(started.id, seen.append)
    pipeline.drain()
    unsubscribe()
    final = pipeline.jobs.get(started.id)
    assert final is not None
    return final


def test_the_same_pair_again_is_a_cache_hit_with_no_backend_call(
    pipeline: LocalPipeline, counting: CountingTryon, tmp_path: Path
) -> None:
    item = closet_item(pipeline)
    first = tryon(pipeline, item)

    second = tryon(pipeline, item)

    assert first.status is second.status is JobStatus.DONE
    assert second.cache_hit and counting.calls == 1
    assert second.stages["tryon_generate"].status is StageStatus.SKIPPED
    assert second.result is not None
    assert second.result.items[0].image.path == f"tryon/{second.id}/tryon.webp"
    assert (tmp_path / "out" / second.result.items[0].image.path).exists()


def test_another_category_is_another_result(
    pipeline: LocalPipeline, counting: CountingTryon
) -> None:
    item = closet_item(pipeline)
    tryon(pipeline, item)

    other = tryon(pipeline, item, category="one-pieces")

    assert other.status is JobStatus.DONE and not other.cache_hit and counting.calls == 2
    assert other.result is not None and other.result.items[0].label == "one-pieces"


def test_a_person_photo_uploaded_before_can_be_reused(
    pipeline: LocalPipeline, counting: CountingTryon
) -> None:
    item = closet_item(pipeline)
    first = tryon(pipeline, item)

    reused = pipeline.process(
        b"{}",
        "request.json",
        "alice",
        folder="tryon/",
        metadata={"garment": item, "person": first.source.name},
    )

    assert reused.status is JobStatus.DONE, reused.error
    assert reused.inputs is not None and reused.inputs.person == first.source.name
    assert reused.cache_hit and counting.calls == 1


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ({"garment": "nosuchjob/items/0"}, "item_not_found"),
        ({"garment": "{job}/items/7"}, "item_not_found"),
        ({"garment": "not an item"}, "invalid_request"),
        ({}, "invalid_request"),
        ({"garment": "{job}/items/0", "category": "hats"}, "invalid_request"),
        ({"garment": "{job}/items/0", "person": "users/bob/tryon/him.jpg"}, "invalid_request"),
        ({"garment": "{job}/items/0", "person": "users/alice/tryon/none.jpg"}, "invalid_request"),
    ],
)
def test_bad_requests_fail_with_a_code_before_any_model_runs(
    pipeline: LocalPipeline, counting: CountingTryon, metadata: dict[str, str], code: str
) -> None:
    item = closet_item(pipeline)
    job_id = item.split("/")[0]
    filled = {key: value.replace("{job}", job_id) for key, value in metadata.items()}

    job = pipeline.process(PERSON, "me.jpg", "alice", folder="tryon/", metadata=filled)

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == code and job.error.stage == "tryon_prepare"
    assert counting.calls == 0


def test_an_item_of_another_user_is_refused(
    pipeline: LocalPipeline, counting: CountingTryon
) -> None:
    item = closet_item(pipeline, uid="bob")

    job = tryon(pipeline, item, uid="alice")

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == "item_not_found"
    assert counting.calls == 0


def test_a_person_photo_without_a_person_is_refused(pipeline: LocalPipeline) -> None:
    item = closet_item(pipeline)
    empty = jpeg(Image.new("RGB", (480, 720), (236, 234, 230)))

    job = tryon(pipeline, item, person=empty)

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == "no_person_found"
    assert job.error.stage == "tryon_generate"


def test_a_bad_person_photo_is_invalid_image(pipeline: LocalPipeline) -> None:
    item = closet_item(pipeline)

    job = tryon(pipeline, item, person=b"this is not a photo")

    assert job.error is not None and job.error.code in ("invalid_image", "unsupported_format")


@pytest.fixture
def fashn() -> Iterator[FakeFashn]:
    with FakeFashn(polls=2) as server:
        yield server


def fashn_pipeline(tmp_path: Path, fashn: FakeFashn) -> LocalPipeline:
    return make(
        tmp_path,
        tryon_backend="fashn",
        fashn_api_key=fashn.api_key,
        fashn_base_url=fashn.url,
        tryon_poll_s=0.01,
        max_attempts=3,
    )


def test_fashn_answering_503_for_a_while_still_completes(tmp_path: Path, fashn: FakeFashn) -> None:
    pipeline = fashn_pipeline(tmp_path, fashn)
    item = closet_item(pipeline)
    fashn.fail_next(2, 503)

    job = tryon(pipeline, item)

    assert job.status is JobStatus.DONE, job.error
    assert job.stages["tryon_generate"].attempts == 3
    assert len(fashn.runs) == 1


def test_fashn_answering_503_forever_is_dead_lettered(tmp_path: Path, fashn: FakeFashn) -> None:
    pipeline = fashn_pipeline(tmp_path, fashn)
    item = closet_item(pipeline)
    fashn.fail_next(-1, 503)

    job = tryon(pipeline, item)

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == "backend_unavailable"
    assert job.error.stage == "tryon_generate" and "503" in job.error.message


def test_a_refusal_fails_the_job_with_its_reason(tmp_path: Path, fashn: FakeFashn) -> None:
    pipeline = fashn_pipeline(tmp_path, fashn)
    item = closet_item(pipeline)
    fashn.runtime_error = ("ContentModerationError", "Prohibited content detected")

    job = tryon(pipeline, item)

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == "backend_refused"
    assert "Prohibited content" in job.error.message and not job.error.retryable

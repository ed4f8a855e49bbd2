"""Stage handlers one at a time, over the local ports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import imaging
from common.adapters.folder import FolderBlobStore
from common.adapters.memory import MemoryJobStore
from common.backends.segmentation import GarmentMask, SegmentationBackend
from common.config import Settings
from common.errors import ImageTooLarge, NoGarmentFound
from common.jobs import job_id_for, uid_for
from common.schemas import Job, Segments, Source, StageMessage, UploadEvent
from functions.finalize.handler import Finalize
from functions.ingest.handler import Ingest
from functions.segment.handler import Segment

JOB = "job-000001"


class FixedSegmentation(SegmentationBackend):
    """Returns the masks the test gives it, whatever the image."""

    name = "fixed"

    def __init__(self, masks: list[GarmentMask]) -> None:
        self.masks = masks

    @classmethod
    def from_settings(cls, settings: Settings) -> FixedSegmentation:
        return cls([])

    def segment(self, image: Image.Image, foreground: np.ndarray) -> list[GarmentMask]:
        return self.masks


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, local_root=tmp_path)


@pytest.fixture
def blobs(settings: Settings) -> FolderBlobStore:
    return FolderBlobStore(settings.blob_root)


def box_mask(left: int, top: int, right: int, bottom: int, size=(200, 100)) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def write_work_images(blobs: FolderBlobStore, settings: Settings) -> dict[str, str]:
    image = Image.new("RGB", (200, 100), (20, 120, 200))
    cutout = image.copy()
    cutout.putalpha(Image.fromarray(np.where(box_mask(10, 10, 190, 90), 255, 0).astype(np.uint8)))
    return {
        "input": imaging.write_work(blobs, settings.work_bucket, JOB, "input", image),
        "cutout": imaging.write_work(blobs, settings.work_bucket, JOB, "cutout", cutout),
    }


def test_segment_keeps_garments_above_the_area_floor_largest_first(settings, blobs):
    refs = write_work_images(blobs, settings)
    masks = [
        GarmentMask("belt", box_mask(10, 10, 12, 12)),  # 4 px: below 0.5 % of the image
        GarmentMask("pants", box_mask(10, 50, 190, 90)),
        GarmentMask("upper-clothes", box_mask(10, 10, 190, 50)),
        GarmentMask("hat", box_mask(10, 10, 30, 20)),
    ]
    stage = Segment(settings, blobs, FixedSegmentation(masks))

    outcome = stage.handle(StageMessage(job_id=JOB, stage="segment", refs=refs))

    segments = Segments.model_validate_json(
        blobs.read(settings.work_bucket, outcome.refs["segments"])
    )
    assert [g.label for g in segments.garments] == ["pants", "upper-clothes", "hat"]
    assert segments.garments[0].bbox == (10, 50, 190, 90)
    assert segments.garments[0].area == pytest.approx(180 * 40 / 20000)
    stored = imaging.open_work(blobs.read(settings.work_bucket, segments.garments[2].mask))
    assert np.array_equal(np.asarray(stored) >= 128, box_mask(10, 10, 30, 20))


def test_segment_with_nothing_found_fails_with_no_garment_found(settings, blobs):
    refs = write_work_images(blobs, settings)
    stage = Segment(settings, blobs, FixedSegmentation([GarmentMask("belt", box_mask(0, 0, 2, 2))]))

    with pytest.raises(NoGarmentFound):
        stage.handle(StageMessage(job_id=JOB, stage="segment", refs=refs))


def test_finalize_writes_jpeg_outputs_when_configured(tmp_path, blobs):
    settings = Settings.from_env({}, local_root=tmp_path, output_format="jpeg", thumbnail_size=64)
    refs = write_work_images(blobs, settings)
    segment = Segment(
        settings, blobs, FixedSegmentation([GarmentMask("dress", box_mask(10, 10, 190, 90))])
    )
    refs |= segment.handle(StageMessage(job_id=JOB, stage="segment", refs=refs)).refs

    outcome = Finalize(settings, blobs).handle(
        StageMessage(job_id=JOB, stage="finalize", refs=refs)
    )

    assert outcome.finished and outcome.result is not None
    item = outcome.result.items[0]
    assert item.image.path == f"{JOB}/items/0-dress.jpg" and item.image.format == "jpeg"
    assert max(item.thumbnail.width, item.thumbnail.height) == 64
    data = blobs.read(settings.results_bucket, item.image.path)
    assert imaging.sniff_format(data) == "jpeg" and len(data) == item.image.bytes
    manifest = json.loads(blobs.read(settings.results_bucket, f"{JOB}/manifest.json"))
    assert manifest["items"][0]["image"]["path"] == item.image.path


def test_ingest_refuses_an_oversized_upload_before_reading_it(settings, blobs):
    jobs = MemoryJobStore()
    # The object does not even exist: the declared size alone must refuse it.
    source = Source(
        bucket=settings.uploads_bucket, name="users/u/huge.jpg", generation="1", size=10**9
    )
    jobs.create(Job(id=JOB, uid="u", source=source))

    with pytest.raises(ImageTooLarge):
        Ingest(settings, blobs, jobs).handle(StageMessage(job_id=JOB, stage="ingest"))


def test_ingest_writes_the_working_image_and_records_the_hash(settings, blobs):
    jobs = MemoryJobStore()
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 1500), (200, 30, 30)).save(buffer, format="JPEG")
    blobs.write(settings.uploads_bucket, "users/u/a.jpg", buffer.getvalue(), "image/jpeg")
    jobs.create(
        Job(
            id=JOB,
            uid="u",
            source=Source(bucket=settings.uploads_bucket, name="users/u/a.jpg", generation="1"),
        )
    )

    outcome = Ingest(settings, blobs, jobs).handle(StageMessage(job_id=JOB, stage="ingest"))

    working = imaging.open_work(blobs.read(settings.work_bucket, outcome.refs["input"]))
    assert working.size == (1024, 512)
    assert outcome.source is not None and outcome.source.sha256 and len(outcome.source.sha256) == 64
    assert outcome.source.content_type == "image/jpeg"
    assert outcome.cache_key and outcome.cache_key.startswith(outcome.source.sha256)


def test_job_id_is_deterministic_and_honours_valid_client_ids():
    event = UploadEvent(bucket="b", name="users/alice/a.jpg", generation="17")

    assert job_id_for(event) == job_id_for(event.model_copy())
    assert job_id_for(event) != job_id_for(event.model_copy(update={"generation": "18"}))
    assert job_id_for(event.model_copy(update={"metadata": {"job-id": "my-job-42"}})) == "my-job-42"
    assert job_id_for(event.model_copy(update={"metadata": {"job-id": "../../x"}})) == job_id_for(
        event
    )
    assert uid_for(event, "anonymous") == "alice"
    assert (
        uid_for(UploadEvent(bucket="b", name="loose.jpg", generation="1"), "anonymous")
        == "anonymous"
    )

"""The whole pipeline in-process: every stage over the local ports."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.backends.background import BackgroundBackend
from common.backends.background.classic import ClassicBackground
from common.backends.lazy import Backends
from common.config import Settings
from common.errors import ConfigurationError, TransientError
from common.pipeline import LocalPipeline
from common.pipelines import PIPELINES, warmer
from common.schemas import Job, JobStatus, StageStatus, UploadEvent
from tests import badinputs

STAGES = PIPELINES["closet"].stages


class CountingBackground(BackgroundBackend):
    """The real classic backend, counting calls and optionally failing the first ones."""

    name = "classic"

    def __init__(self, failures: int = 0) -> None:
        self.inner = ClassicBackground()
        self.calls = 0
        self.failures = failures

    @classmethod
    def from_settings(cls, settings: Settings) -> CountingBackground:
        return cls()

    def remove(self, image: Image.Image) -> Image.Image:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise TransientError("503 from the model server")
        return self.inner.remove(image)


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_pipeline(
    tmp_path: Path, background: BackgroundBackend | None = None, **overrides: object
) -> LocalPipeline:
    settings = Settings.from_env({}, local_root=tmp_path / "local", **overrides)
    backends = Backends(settings, background=background or CountingBackground(), generative=None)
    return LocalPipeline(settings, results_dir=tmp_path / "out", backends=backends, retry_delay_s=0)


def test_large_jpeg_completes_with_every_stage_recorded(tmp_path):
    pipeline = make_pipeline(tmp_path)
    photo = jpeg(badinputs.garment_photo(4000, 3000))

    job = pipeline.process(photo, "big.jpg")

    assert job.status is JobStatus.DONE and job.progress == 100
    assert job.result is not None and len(job.result.items) >= 1
    assert set(job.stages) == set(STAGES)
    for name, record in job.stages.items():
        assert record.ms is not None and record.started_at and record.ended_at, name
    assert job.stages["expand"].status is StageStatus.SKIPPED
    assert "credentials" in (job.stages["expand"].reason or "")
    for item in job.result.items:
        assert max(item.image.width, item.image.height) <= 1024
        assert max(item.thumbnail.width, item.thumbnail.height) <= 256
        stored = tmp_path / "out" / item.image.path
        assert stored.stat().st_size == item.image.bytes
        with Image.open(stored) as image:
            assert image.format == "WEBP" and image.mode == "RGBA"
            assert image.size == (item.image.width, item.image.height)
    assert job.source.sha256 and job.source.size == len(photo)


def test_result_manifest_is_written_next_to_the_images(tmp_path):
    pipeline = make_pipeline(tmp_path)

    job = pipeline.process(jpeg(badinputs.garment_photo()), "shirt.jpg")

    assert job.result is not None and job.result.manifest is not None
    manifest = (tmp_path / "out" / job.result.manifest).read_text()
    assert job.result.items[0].image.path in manifest


def test_identical_upload_completes_from_cache_with_no_model_work(tmp_path):
    background = CountingBackground()
    pipeline = make_pipeline(tmp_path, background)
    photo = jpeg(badinputs.garment_photo())
    first = pipeline.process(photo, "a.jpg")

    second = pipeline.process(photo, "copy-of-a.jpg")

    assert background.calls == 1
    assert first.id != second.id
    assert second.status is JobStatus.DONE and second.cache_hit is True
    assert first.cache_hit is False
    assert first.result is not None and second.result is not None
    assert [i.label for i in second.result.items] == [i.label for i in first.result.items]
    for before, after in zip(first.result.items, second.result.items, strict=True):
        assert after.image.path.startswith(f"{second.id}/")
        assert (tmp_path / "out" / after.image.path).read_bytes() == (
            tmp_path / "out" / before.image.path
        ).read_bytes()
        assert after.image.bytes == before.image.bytes
    assert (tmp_path / "out" / f"{second.id}/manifest.json").is_file()
    for name in STAGES[1:]:
        assert second.stages[name].status is StageStatus.SKIPPED


def test_changed_output_options_do_not_reuse_the_cache(tmp_path):
    photo = jpeg(badinputs.garment_photo())
    make_pipeline(tmp_path).process(photo, "a.jpg")
    background = CountingBackground()

    job = make_pipeline(tmp_path, background, output_format="png").process(photo, "a.jpg")

    assert background.calls == 1 and job.cache_hit is False
    assert job.result is not None and job.result.cutout.format == "png"


def test_transient_failure_is_retried_and_the_job_completes(tmp_path):
    background = CountingBackground(failures=2)
    pipeline = make_pipeline(tmp_path, background)

    job = pipeline.process(jpeg(badinputs.garment_photo()), "a.jpg")

    assert job.status is JobStatus.DONE
    assert job.stages["remove_background"].attempts == 3
    assert background.calls == 3


def test_a_required_backend_that_stays_down_fails_with_backend_unavailable(tmp_path):
    background = CountingBackground(failures=100)
    pipeline = make_pipeline(tmp_path, background, max_attempts=3)

    job = pipeline.process(jpeg(badinputs.garment_photo()), "a.jpg")

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == "backend_unavailable"
    assert job.error.retryable
    assert job.error.stage == "remove_background" and "503" in job.error.message
    assert background.calls == 3


def test_empty_background_fails_with_no_garment_found(tmp_path):
    pipeline = make_pipeline(tmp_path)

    job = pipeline.process(jpeg(Image.new("RGB", (640, 480), (240, 240, 240))), "wall.jpg")

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == "no_garment_found"


@pytest.mark.parametrize("case", badinputs.bad_inputs(), ids=lambda case: case.name)
def test_bad_input_completes_or_fails_with_its_code(tmp_path, case):
    pipeline = make_pipeline(tmp_path)

    job = pipeline.process(case.data, case.filename)

    if case.code is None:
        assert job.status is JobStatus.DONE, job.error
        assert job.result is not None and job.result.items
    else:
        assert job.status is JobStatus.FAILED
        assert job.error is not None and job.error.code == case.code
        assert job.error.stage == "ingest" and not job.error.retryable


def test_duplicated_finalize_event_is_one_job(tmp_path):
    pipeline = make_pipeline(tmp_path)
    event = pipeline.upload(jpeg(badinputs.garment_photo()), "a.jpg", "u1", generation="42")

    first = pipeline.start(event)
    second = pipeline.start(UploadEvent.model_validate(event.model_dump()))

    assert first.id == second.id
    assert len(pipeline.bus) == 1


def test_client_chosen_job_id_and_uid_from_the_upload_path(tmp_path):
    pipeline = make_pipeline(tmp_path)
    event = pipeline.upload(jpeg(badinputs.garment_photo()), "a.jpg", "alice", generation="7")
    event = event.model_copy(update={"metadata": {"job-id": "client-job-123"}})

    job = pipeline.start(event)
    pipeline.drain()

    final = pipeline.jobs.get("client-job-123")
    assert job.id == "client-job-123" and job.uid == "alice"
    assert final is not None and final.status is JobStatus.DONE


def test_listener_sees_progress_only_rise_to_100(tmp_path):
    pipeline = make_pipeline(tmp_path)
    event = pipeline.upload(jpeg(badinputs.garment_photo()), "a.jpg", "u1", generation="1")
    job = pipeline.start(event)
    seen: list[Job] = []
    pipeline.jobs.listen(job.id, seen.append)

    pipeline.drain()

    progress = [snapshot.progress for snapshot in seen]
    assert progress == sorted(progress)
    assert progress[-1] == 100 and seen[-1].status is JobStatus.DONE
    assert all(s.status is not JobStatus.DONE for s in seen[:-1])
    assert {10, 35, 60, 85} <= set(progress)


def test_garment_image_keeps_the_soft_cut_out_edge(tmp_path):
    pipeline = make_pipeline(tmp_path)

    job = pipeline.process(jpeg(badinputs.garment_photo()), "a.jpg")

    assert job.result is not None
    with Image.open(tmp_path / "out" / job.result.items[0].image.path) as image:
        alpha = np.asarray(image.getchannel("A"))
    assert alpha.max() == 255 and alpha.min() == 0


def test_a_function_loads_only_its_own_stage_model(tmp_path):
    # u2net with no weights: only the stage that uses it may fail to start.
    settings = Settings.from_env({}, background_backend="u2net", u2net_home=tmp_path / "empty")
    backends = Backends(settings)

    warmer("segment", backends)
    warmer("tryon_prepare", backends)

    with pytest.raises(ConfigurationError, match="u2net"):
        warmer("remove_background", backends)

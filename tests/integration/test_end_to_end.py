"""The deployed shape on the real emulators: one functions-framework process per function,
Pub/Sub push between them, Firestore job documents, fake-gcs-server upload notifications."""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from google.cloud import firestore, storage  # type: ignore[attr-defined]
from PIL import Image

from common.adapters.firestore import FirestoreJobStore
from common.devstack import DevStack
from common.pipelines import PIPELINES
from common.schemas import Job, JobStatus, StageMessage, StageStatus
from tests import badinputs
from tests.fakes.fashn_server import FakeFashn
from tests.fakes.gemini_server import FakeGemini
from tests.integration.conftest import running_stack
from tests.push import WARMUP, post_cloud_event
from tests.synthetic import person_photo

POISON = (40, 170, 60)  # the fake Gemini answers 503 to every request about a garment this green
JOB_TIMEOUT_S = 60.0
# Two jobs in a row with a slowed caption model, on a machine that may be busy.
STUDIO_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key="e2e-key", poison_rgb=POISON) as server:
        yield server


@pytest.fixture(scope="module")
def fashn() -> Iterator[FakeFashn]:
    with FakeFashn(api_key="e2e-fashn", polls=3) as server:
        yield server


@pytest.fixture(scope="module")
def stack(gemini: FakeGemini, fashn: FakeFashn) -> Iterator[DevStack]:
    function_env = {
        "GEMINI_API_KEY": "e2e-key",
        "CLOSET_GEMINI_BASE_URL": gemini.url,
        "CLOSET_COMPLETION": "false",
        "CLOSET_TRYON_BACKEND": "fashn",
        "FASHN_API_KEY": "e2e-fashn",
        "CLOSET_FASHN_BASE_URL": fashn.url,
        "CLOSET_TRYON_POLL_S": "0.05",
    }
    with running_stack("closet-e2e", function_env) as stack:
        yield stack


@pytest.fixture(scope="module")
def jobs(stack: DevStack) -> FirestoreJobStore:
    return FirestoreJobStore(firestore.Client(project=stack.project))


@pytest.fixture(scope="module")
def gcs(stack: DevStack) -> Any:
    return storage.Client(project=stack.project)


_photos = itertools.count()


def photo(colour: tuple[int, int, int] = (178, 34, 52)) -> bytes:
    """A garment photo whose bytes no earlier call produced, so the cache never answers."""
    pixels = np.asarray(badinputs.garment_photo(800, 600)).copy()
    # A shade of the colour no earlier photo had (within the poison tolerance of 40).
    red, green, blue = colour
    shirt = (pixels == (178, 34, 52)).all(axis=-1)
    pixels[shirt] = (red, min(255, green + 3 * (next(_photos) % 10)), blue)
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


class Recorder:
    """A Firestore listener that keeps every snapshot and says when the job has finished."""

    def __init__(self) -> None:
        self.snapshots: list[Job] = []
        self.finished = threading.Event()

    def __call__(self, job: Job) -> None:
        self.snapshots.append(job)
        if job.status.terminal:
            self.finished.set()


def upload(gcs: Any, stack: DevStack, data: bytes, name: str) -> str:
    job_id = f"e2e-{uuid.uuid4().hex[:16]}"
    blob = gcs.bucket(stack.settings.uploads_bucket).blob(f"users/tester/{job_id}-{name}")
    blob.metadata = {"job-id": job_id}
    blob.upload_from_string(data, content_type="image/jpeg")
    return job_id


def wait_for(jobs: FirestoreJobStore, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job is not None and job.status.terminal:
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s: {jobs.get(job_id)}")


def push(url: str, message: StageMessage) -> int:
    """Deliver `message` the way a Pub/Sub push subscription does; return the HTTP status."""
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(message.to_wire()).encode()).decode(),
            "attributes": {"jobId": message.job_id, "stage": message.stage},
            "messageId": uuid.uuid4().hex,
            "publishTime": "2026-11-23T12:00:00Z",
        },
        "subscription": "projects/closet-e2e/subscriptions/manual",
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(envelope).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def test_three_uploads_complete_with_live_progress_and_stored_results(stack, jobs, gcs, gemini):
    recorders: dict[str, Recorder] = {}
    ids = []
    for index in range(3):
        job_id = f"e2e-{uuid.uuid4().hex[:16]}"
        recorders[job_id] = Recorder()
        jobs.listen(job_id, recorders[job_id])  # attached before the upload exists
        blob = gcs.bucket(stack.settings.uploads_bucket).blob(f"users/tester/{job_id}-{index}.jpg")
        blob.metadata = {"job-id": job_id}
        blob.upload_from_string(photo(), content_type="image/jpeg")
        ids.append(job_id)

    for job_id in ids:
        assert recorders[job_id].finished.wait(JOB_TIMEOUT_S), jobs.get(job_id)

    results = gcs.bucket(stack.settings.results_bucket)
    for job_id in ids:
        snapshots = recorders[job_id].snapshots
        progress = [s.progress for s in snapshots]
        final = snapshots[-1]
        assert progress == sorted(progress) and progress[-1] == 100
        assert len(set(progress)) >= 3, progress  # live steps, not just created and done
        assert final.status is JobStatus.DONE and final.uid == "tester"
        assert all(s.status is not JobStatus.DONE for s in snapshots[:-1])
        assert final.result is not None and final.result.items
        assert final.result.items[0].attributes is not None
        for stage in ("ingest", "remove_background", "segment", "expand", "finalize"):
            assert final.stages[stage].status.finished and final.stages[stage].ms is not None
        for item in final.result.items:
            assert results.blob(item.image.path).exists()
            assert results.blob(item.thumbnail.path).exists()
        assert results.blob(f"{job_id}/manifest.json").exists()


def test_a_message_delivered_twice_does_the_work_once(stack, jobs, gcs, gemini):
    calls_before = len(gemini.calls)
    gemini.delay_s = 3.0  # keeps the job running while segment's message comes again
    try:
        job_id = upload(gcs, stack, photo((30, 60, 170)), "twice.jpg")
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            job = jobs.get(job_id)
            if job is not None and "expand" in job.stages:
                break
            time.sleep(0.05)
        segment_again = StageMessage(
            job_id=job_id,
            stage="segment",
            refs={"input": f"work/{job_id}/input.tiff", "cutout": f"work/{job_id}/cutout.tiff"},
        )
        running = jobs.get(job_id)

        statuses = [push(stack.functions["segment"].url, segment_again) for _ in range(2)]
    finally:
        gemini.delay_s = 0.0

    done = wait_for(jobs, job_id)
    assert running is not None and running.status is JobStatus.RUNNING
    assert all(200 <= status < 300 for status in statuses)
    assert done.status is JobStatus.DONE
    assert done.stages["segment"].attempts == 1 and done.stages["expand"].attempts == 1
    assert done.result is not None
    # One tagging call per garment: expand ran once, not once per delivery.
    assert len(gemini.calls) - calls_before == len(done.result.items)


def test_identical_upload_is_served_from_the_cache_without_model_calls(stack, jobs, gcs, gemini):
    data = photo()
    first = wait_for(jobs, upload(gcs, stack, data, "first.jpg"))
    calls = len(gemini.calls)

    second = wait_for(jobs, upload(gcs, stack, data, "second.jpg"))

    assert first.cache_hit is False and second.cache_hit is True
    assert second.status is JobStatus.DONE and len(gemini.calls) == calls
    assert second.result is not None
    results = gcs.bucket(stack.settings.results_bucket)
    for item in second.result.items:
        assert item.image.path.startswith(f"{second.id}/")
        assert results.blob(item.image.path).exists()


def test_a_generative_backend_that_stays_down_skips_expand_and_the_job_completes(
    stack, jobs, gcs, gemini
):
    poisoned = upload(gcs, stack, photo(POISON), "green.jpg")
    healthy = upload(gcs, stack, photo(), "red.jpg")

    healthy_job = wait_for(jobs, healthy)
    done = wait_for(jobs, poisoned, timeout_s=120)

    assert healthy_job.status is JobStatus.DONE
    # Tagging is optional: after the last delivery the step is skipped, saying why.
    assert done.status is JobStatus.DONE, done.error
    expand = done.stages["expand"]
    assert expand.status is StageStatus.SKIPPED
    assert expand.reason is not None and "503" in expand.reason
    assert f"after {stack.topology.max_delivery_attempts} attempts" in expand.reason
    assert expand.attempts == stack.topology.max_delivery_attempts
    assert done.result is not None and done.result.items
    assert all(item.attributes is None for item in done.result.items)


def test_bad_upload_fails_with_invalid_image_after_one_attempt(stack, jobs, gcs):
    job_id = upload(gcs, stack, b"this is not a photo\n" * 40, "notes.jpg")

    failed = wait_for(jobs, job_id)
    time.sleep(2)  # long enough for a redelivery to show, were there one

    again = jobs.get(job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "invalid_image"
    assert again is not None and again.stages["ingest"].attempts == 1


def test_outputs_never_start_a_job(stack, jobs, gcs):
    job_id = upload(gcs, stack, photo(), "loop.jpg")
    done = wait_for(jobs, job_id)
    assert done.result is not None
    # Re-upload an output into the results bucket under a users/ path: no notification fires.
    stray = f"e2e-{uuid.uuid4().hex[:16]}"
    blob = gcs.bucket(stack.settings.results_bucket).blob(f"users/tester/{stray}.webp")
    blob.metadata = {"job-id": stray}
    blob.upload_from_string(b"RIFF....WEBP", content_type="image/webp")
    time.sleep(2)

    assert jobs.get(stray) is None


def test_every_function_answers_a_warm_up(stack):
    # How fast is the benchmark's business; here: every function accepts the event.
    for name, function in stack.functions.items():
        status = post_cloud_event(function.url, WARMUP, "//cloudscheduler.googleapis.com/e2e")

        assert 200 <= status < 300, name


def test_results_are_readable_images(stack, jobs, gcs):
    job_id = upload(gcs, stack, photo(), "check.jpg")
    done = wait_for(jobs, job_id)

    assert done.result is not None
    data = (
        gcs.bucket(stack.settings.results_bucket)
        .blob(done.result.items[0].image.path)
        .download_as_bytes()
    )
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP" and image.mode == "RGBA"
        assert max(image.size) <= 1024


# -- virtual try-on ----------------------------------------------------------------------


def _person() -> bytes:
    buffer = io.BytesIO()
    person_photo(480, 720).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


PERSON = _person()


def upload_tryon(
    gcs: Any, stack: DevStack, garment: str, uid: str = "tester", **metadata: str
) -> str:
    """A person photo under users/{uid}/tryon/ naming a closet item, as the app uploads it."""
    job_id = f"e2e-tryon-{uuid.uuid4().hex[:12]}"
    blob = gcs.bucket(stack.settings.uploads_bucket).blob(f"users/{uid}/tryon/{job_id}.jpg")
    blob.metadata = {"job-id": job_id, "garment": garment, **metadata}
    blob.upload_from_string(PERSON, content_type="image/jpeg")
    return job_id


@pytest.fixture(scope="module")
def closet_item(stack: DevStack, jobs: FirestoreJobStore, gcs: Any) -> str:
    done = wait_for(jobs, upload(gcs, stack, photo(), "to-try-on.jpg"))
    assert done.status is JobStatus.DONE
    return f"{done.id}/items/0"


def test_a_tryon_of_a_closet_item_completes_live_and_again_from_the_cache(
    stack, jobs, gcs, fashn, closet_item
):
    fashn.reset()
    recorder = Recorder()
    job_id = f"e2e-tryon-{uuid.uuid4().hex[:12]}"
    jobs.listen(job_id, recorder)
    blob = gcs.bucket(stack.settings.uploads_bucket).blob(f"users/tester/tryon/{job_id}.jpg")
    blob.metadata = {"job-id": job_id, "garment": closet_item, "category": "tops"}
    blob.upload_from_string(PERSON, content_type="image/jpeg")

    assert recorder.finished.wait(JOB_TIMEOUT_S), jobs.get(job_id)
    final = recorder.snapshots[-1]
    progress = [s.progress for s in recorder.snapshots]
    assert final.status is JobStatus.DONE, final.error
    assert progress == sorted(progress) and progress[-1] == 100
    assert final.kind == "tryon" and final.inputs is not None
    assert final.inputs.garment == closet_item
    assert set(final.stages) == {"tryon_prepare", "tryon_generate", "finalize"}
    assert final.stages["tryon_generate"].backend == "fashn"
    # FASHN's own states reached the listener (coalesced to one write a second).
    states = {"Starting the try-on", "Waiting in FASHN's queue", "Dressing the person (FASHN)"}
    assert states & {s.message for s in recorder.snapshots}
    assert final.result is not None
    (result,) = final.result.items
    results = gcs.bucket(stack.settings.results_bucket)
    assert result.image.path.startswith(f"tryon/{job_id}/")
    assert results.blob(result.image.path).exists()
    assert results.blob(result.thumbnail.path).exists()
    assert len(fashn.runs) == 1

    again = wait_for(jobs, upload_tryon(gcs, stack, closet_item, category="tops"))

    assert again.status is JobStatus.DONE and again.cache_hit
    assert len(fashn.runs) == 1  # no second paid call
    assert again.result is not None
    assert results.blob(again.result.items[0].image.path).exists()


def test_a_tryon_backend_answering_503_for_a_while_still_completes(
    stack, jobs, gcs, fashn, closet_item
):
    fashn.reset()
    fashn.fail_next(2, 503)

    done = wait_for(jobs, upload_tryon(gcs, stack, closet_item, category="bottoms"))

    assert done.status is JobStatus.DONE, done.error
    assert done.stages["tryon_generate"].attempts == 3
    assert len(fashn.runs) == 1


def test_a_tryon_backend_answering_503_forever_is_dead_lettered(
    stack, jobs, gcs, fashn, closet_item
):
    fashn.reset()
    fashn.fail_next(-1, 503)
    try:
        failed = wait_for(jobs, upload_tryon(gcs, stack, closet_item, category="one-pieces"), 120)
    finally:
        fashn.reset()

    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "backend_unavailable"
    assert failed.error.stage == "tryon_generate" and "503" in failed.error.message


def test_a_tryon_of_another_users_item_is_refused(stack, jobs, gcs, fashn, closet_item):
    fashn.reset()

    failed = wait_for(jobs, upload_tryon(gcs, stack, closet_item, uid="mallory"))

    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "item_not_found"
    assert fashn.runs == []


def push_status(url: str, message: StageMessage) -> int:
    """`push`, with a 5xx answer (the step is held: redeliver later) returned, not raised."""
    try:
        return push(url, message)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_studio_job_of_a_closet_item_runs_its_branches_side_by_side(stack, jobs, gcs, gemini):
    closet = wait_for(jobs, upload(gcs, stack, photo(), "for-studio.jpg"), STUDIO_TIMEOUT_S)
    assert closet.status is JobStatus.DONE and closet.result is not None
    job_id = f"e2e-studio-{uuid.uuid4().hex[:12]}"
    recorder = Recorder()
    jobs.listen(job_id, recorder)
    gemini.delay_s = 2.0  # the caption takes a while: the backdrop is drawn meanwhile
    try:
        # No photo: the upload only carries the request, naming the closet item.
        blob = gcs.bucket(stack.settings.uploads_bucket).blob(
            f"users/tester/studio/{job_id}-request.json"
        )
        blob.metadata = {
            "job-id": job_id,
            "subject": f"{closet.id}/items/0",
            "aspect": "1:1,9:16",
            "style": "gradient",
            "context": "size M, organic cotton",
        }
        blob.upload_from_string(b"{}", content_type="application/json")
        deadline = time.monotonic() + STUDIO_TIMEOUT_S
        while (job := jobs.get(job_id)) is None or "compose" not in job.stages:
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        # The join's message again, while compose works and once the job is done.
        joined = PIPELINES["studio"].message_to(job, "compose")
        assert joined is not None
        compose_url = stack.functions["compose"].url
        during = push_status(compose_url, joined)
    finally:
        gemini.delay_s = 0.0
    assert recorder.finished.wait(STUDIO_TIMEOUT_S), jobs.get(job_id)
    after = [push_status(compose_url, joined) for _ in range(2)]

    done = jobs.get(job_id)
    assert done is not None and done.status is JobStatus.DONE, done
    # While compose works the copy is told to come back later (5xx); after, it is acknowledged.
    assert during == 500 or 200 <= during < 300
    assert all(200 <= status < 300 for status in after)
    progress = [s.progress for s in recorder.snapshots]
    assert progress == sorted(progress) and progress[-1] == 100
    stages = done.stages
    assert stages["compose"].attempts == 1 and stages["compose"].status is StageStatus.DONE
    backdrop, caption = stages["backdrop"], stages["caption"]
    assert backdrop.started_at and backdrop.ended_at and caption.started_at and caption.ended_at
    # Side by side: each began before the other ended.
    assert backdrop.started_at < caption.ended_at and caption.started_at < backdrop.ended_at
    assert "Making the backdrop · Writing the caption" in {s.message for s in recorder.snapshots}
    assert done.result is not None and done.result.caption is not None
    assert {item.label for item in done.result.items} == {"1:1", "9:16"}
    results = gcs.bucket(stack.settings.results_bucket)
    for item in done.result.items:
        assert results.blob(item.image.path).exists() and results.blob(item.thumbnail.path).exists()
        assert item.image.width == 1080
    manifest = json.loads(results.blob(f"studio/{job_id}/manifest.json").download_as_bytes())
    assert manifest["caption"]["title"] == done.result.caption.title

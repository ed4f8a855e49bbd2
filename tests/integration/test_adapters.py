"""The cloud adapters against the real emulators: Firestore, Pub/Sub, fake-gcs-server."""

from __future__ import annotations

import json
import queue
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore

from common.adapters.firestore import FirestoreJobStore
from common.adapters.gcs import GcsBlobStore
from common.adapters.pubsub import PubSubBus, topic_for
from common.cloud import cloud_ports
from common.config import Settings
from common.errors import InvalidImage, TransientError
from common.pipelines import PIPELINES
from common.schemas import (
    Claim,
    Job,
    JobError,
    JobStatus,
    JobUpdate,
    Source,
    StageMessage,
    StageRecord,
    StageStatus,
    utcnow,
)
from common.topology import DECLARATION
from tests.integration.conftest import PROJECT, UPLOADS_BUCKET

# -- helpers ----------------------------------------------------------------------------------


def new_job(uid: str = "user-1") -> Job:
    """A queued job with an id no other test uses (the emulators live for the whole session)."""
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    return Job(
        id=job_id,
        uid=uid,
        source=Source(
            bucket="closet-uploads",
            name=f"users/{uid}/{job_id}.jpg",
            generation="1",
            content_type="image/jpeg",
            size=1234,
        ),
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def pull(subscriber: Any, subscription: str, timeout_s: float = 10.0) -> Any:
    """The first message on `subscription`, acknowledged."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 1}, timeout=timeout_s
        )
        if response.received_messages:
            received = response.received_messages[0]
            subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [received.ack_id]}
            )
            return received.message
        time.sleep(0.05)
    raise AssertionError(f"no message on {subscription} within {timeout_s} s")


def subscribe(publisher: Any, subscriber: Any, topic_name: str) -> str:
    """A fresh pull subscription on `topic_name` (created if absent)."""
    topic = publisher.topic_path(PROJECT, topic_name)
    existing = {t.name for t in publisher.list_topics(request={"project": f"projects/{PROJECT}"})}
    if topic not in existing:
        publisher.create_topic(name=topic)
    subscription: str = subscriber.subscription_path(PROJECT, f"test-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=subscription, topic=topic)
    return subscription


@pytest.fixture
def jobs(firestore_client: Any) -> FirestoreJobStore:
    return FirestoreJobStore(firestore_client)


@pytest.fixture
def blobs(storage_client: Any) -> GcsBlobStore:
    return GcsBlobStore(storage_client)


@pytest.fixture
def bucket(storage_client: Any) -> str:
    name = f"closet-test-{uuid.uuid4().hex[:8]}"
    storage_client.create_bucket(name)
    return name


# -- Firestore JobStore -----------------------------------------------------------------------


def test_create_stores_a_new_job_and_get_returns_it(jobs: FirestoreJobStore) -> None:
    job = new_job()

    stored, created = jobs.create(job)

    assert created
    assert stored == job
    assert jobs.get(job.id) == job


def test_create_if_absent_returns_the_existing_job(jobs: FirestoreJobStore) -> None:
    first = new_job(uid="first")
    jobs.create(first)
    duplicate = first.model_copy(update={"uid": "second", "message": "again"})

    stored, created = jobs.create(duplicate)

    assert not created
    assert stored == first
    assert jobs.get(first.id) == first


def test_get_of_an_unknown_job_is_none(jobs: FirestoreJobStore) -> None:
    assert jobs.get("no-such-job") is None


def test_document_is_the_wire_form_with_timestamps_and_no_image_data(
    jobs: FirestoreJobStore, firestore_client: Any
) -> None:
    job = new_job()
    jobs.create(job)

    document = firestore_client.collection("jobs").document(job.id).get().to_dict()

    assert set(document) == set(job.to_wire())
    assert document["source"]["contentType"] == "image/jpeg"
    assert document["status"] == "queued"
    assert document["cacheHit"] is False
    assert isinstance(document["createdAt"], datetime)
    assert document["createdAt"] == job.created_at
    assert not any(isinstance(value, bytes) for value in document.values())


def test_advance_never_decreases_progress(jobs: FirestoreJobStore) -> None:
    job = new_job()
    jobs.create(job)
    jobs.advance(job.id, JobUpdate(status=JobStatus.RUNNING, progress=35))

    advanced = jobs.advance(job.id, JobUpdate(progress=10, stage="segment"))

    assert advanced.progress == 35
    assert advanced.stage == "segment"
    stored = jobs.get(job.id)
    assert stored is not None and stored.progress == 35


def test_a_terminal_job_never_changes_again(jobs: FirestoreJobStore) -> None:
    job = new_job()
    jobs.create(job)
    failed = jobs.advance(
        job.id,
        JobUpdate(
            status=JobStatus.FAILED,
            message="not an image",
            error=JobError(code="invalid_image", message="not an image", stage="ingest"),
        ),
    )

    after = jobs.advance(
        job.id, JobUpdate(status=JobStatus.RUNNING, progress=60, message="Finding the garments")
    )

    assert after == failed
    assert jobs.get(job.id) == failed
    assert failed.status is JobStatus.FAILED and failed.error is not None


def test_stage_records_merge_field_by_field(jobs: FirestoreJobStore) -> None:
    job = new_job()
    jobs.create(job)
    started = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    jobs.advance(
        job.id,
        JobUpdate(stages={"segment": StageRecord(status=StageStatus.RUNNING, started_at=started)}),
    )

    advanced = jobs.advance(
        job.id,
        JobUpdate(stages={"segment": StageRecord(status=StageStatus.DONE, ms=42, attempts=1)}),
    )

    record = advanced.stages["segment"]
    assert (record.status, record.started_at, record.ms, record.attempts) == (
        StageStatus.DONE,
        started,
        42,
        1,
    )
    assert jobs.get(job.id) == advanced


def test_concurrent_advances_from_two_instances_keep_both_stage_records(
    firestore_client: Any,
) -> None:
    # Two clients stand for two function instances: their transactions really conflict.
    job = new_job()
    FirestoreJobStore(firestore_client).create(job)
    instances = [FirestoreJobStore(firestore_client), FirestoreJobStore(firestore.Client(PROJECT))]
    names = ["segment", "expand"]
    start = threading.Barrier(len(names))

    def advance(store: FirestoreJobStore, name: str) -> None:
        start.wait()
        store.advance(job.id, JobUpdate(stages={name: StageRecord(status=StageStatus.DONE)}))

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(advance, instances, names))

    stored = instances[0].get(job.id)
    assert stored is not None
    assert sorted(stored.stages) == sorted(names)


def test_concurrent_advances_within_one_process_lose_no_stage_record(
    jobs: FirestoreJobStore,
) -> None:
    job = new_job()
    jobs.create(job)
    names = [f"stage_{i}" for i in range(6)]
    start = threading.Barrier(len(names))

    def advance(name: str) -> None:
        start.wait()
        jobs.advance(job.id, JobUpdate(stages={name: StageRecord(status=StageStatus.DONE)}))

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(advance, names))

    stored = jobs.get(job.id)
    assert stored is not None
    assert sorted(stored.stages) == names


def test_advance_of_an_unknown_job_raises(jobs: FirestoreJobStore) -> None:
    with pytest.raises(KeyError):
        jobs.advance("no-such-job", JobUpdate(progress=10))


def test_listener_sees_every_change_in_order_and_stops_after_unsubscribe(
    jobs: FirestoreJobStore,
) -> None:
    job = new_job()
    seen: queue.Queue[Job] = queue.Queue()
    progress_seen: list[int] = []
    unsubscribe = jobs.listen(job.id, seen.put)  # attached before the job exists

    jobs.create(job)
    wait_for(lambda: _drain(seen, progress_seen) == [0])
    for progress in (10, 35, 60):
        jobs.advance(job.id, JobUpdate(status=JobStatus.RUNNING, progress=progress))
        wait_for(lambda: _drain(seen, progress_seen)[-1] == progress)  # noqa: B023
    unsubscribe()
    jobs.advance(job.id, JobUpdate(progress=85))
    time.sleep(1.0)

    assert progress_seen == [0, 10, 35, 60]
    assert seen.empty(), "the listener was called after unsubscribe"


def test_listener_sees_quick_changes_in_order(jobs: FirestoreJobStore) -> None:
    job = new_job()
    jobs.create(job)
    seen: queue.Queue[Job] = queue.Queue()
    progress_seen: list[int] = []
    unsubscribe = jobs.listen(job.id, seen.put)

    for progress in (10, 35, 60, 85):
        jobs.advance(job.id, JobUpdate(status=JobStatus.RUNNING, progress=progress))
    wait_for(lambda: _drain(seen, progress_seen)[-1:] == [85])
    unsubscribe()

    # Firestore may fold quick writes into one snapshot, but never reorders them.
    assert progress_seen == sorted(progress_seen)


def _drain(source: queue.Queue[Job], progress: list[int]) -> list[int]:
    """Move what the listener has seen so far into `progress`; return it."""
    while not source.empty():
        progress.append(source.get_nowait().progress)
    return progress


# -- Pub/Sub Bus ------------------------------------------------------------------------------


def test_topic_for_reads_the_topology_declaration() -> None:
    declared = tomllib.loads(DECLARATION.read_text())
    topics = {f["name"]: f["topic"] for f in declared["function"]}

    assert topic_for("remove_background") == topics["remove_background"]
    assert topic_for("segment") == topics["segment"]


def test_publish_delivers_json_with_job_and_stage_attributes(
    publisher: Any, subscriber: Any
) -> None:
    subscription = subscribe(publisher, subscriber, topic_for("remove_background"))
    bus = PubSubBus(publisher, PROJECT)
    message = StageMessage(
        job_id="job-123", stage="remove_background", refs={"working": "work/job-123/working.png"}
    )

    bus.publish(message)

    received = pull(subscriber, subscription)
    assert dict(received.attributes) == {"jobId": "job-123", "stage": "remove_background"}
    assert json.loads(received.data) == message.to_wire()
    assert StageMessage.model_validate_json(received.data) == message


def test_publish_to_a_missing_topic_raises_transient_error(publisher: Any) -> None:
    # No topic exists in this project: the publish fails on the emulator's side.
    bus = PubSubBus(publisher, "closet-project-without-topics", timeout_s=10)

    with pytest.raises(TransientError):
        bus.publish(StageMessage(job_id="job-123", stage="segment"))


# -- Cloud Storage BlobStore ------------------------------------------------------------------


def test_write_then_read_exists_and_metadata_round_trip(
    blobs: GcsBlobStore, storage_client: Any, bucket: str
) -> None:
    data = b"RIFF\x00\x00\x00\x00WEBPVP8 fake image bytes"
    name = "results/job-1/item-0.webp"

    url = blobs.write(bucket, name, data, "image/webp", cache_control="public, max-age=3600")

    assert url == f"gs://{bucket}/{name}" == blobs.url(bucket, name)
    assert blobs.read(bucket, name) == data
    assert blobs.exists(bucket, name)
    assert not blobs.exists(bucket, "results/job-1/missing.webp")
    stored = storage_client.bucket(bucket).get_blob(name)
    assert stored.content_type == "image/webp"
    assert stored.cache_control == "public, max-age=3600"


def test_write_overwrites_at_the_same_path(blobs: GcsBlobStore, bucket: str) -> None:
    blobs.write(bucket, "work/job-1/cutout.png", b"first", "image/png")

    blobs.write(bucket, "work/job-1/cutout.png", b"second", "image/png")

    assert blobs.read(bucket, "work/job-1/cutout.png") == b"second"


def test_read_of_a_missing_object_is_an_invalid_image(blobs: GcsBlobStore, bucket: str) -> None:
    with pytest.raises(InvalidImage):
        blobs.read(bucket, "users/u/nothing.jpg")


# -- fake-gcs-server → Pub/Sub notifications ---------------------------------------------------


def test_an_upload_publishes_object_finalize_to_the_uploads_topic(
    storage_client: Any, publisher: Any, subscriber: Any, upload_events_topic: str
) -> None:
    subscription = subscribe(publisher, subscriber, upload_events_topic.rsplit("/", 1)[-1])
    uploads = storage_client.bucket(UPLOADS_BUCKET)
    if not uploads.exists():
        storage_client.create_bucket(UPLOADS_BUCKET)
    blob = uploads.blob("users/u1/photo.jpg")

    blob.upload_from_string(b"\xff\xd8\xff fake jpeg", content_type="image/jpeg")

    received = pull(subscriber, subscription)
    attributes = dict(received.attributes)
    assert attributes["eventType"] == "OBJECT_FINALIZE"
    assert attributes["bucketId"] == UPLOADS_BUCKET
    assert attributes["objectId"] == "users/u1/photo.jpg"
    assert attributes["objectGeneration"] == str(blob.generation)
    resource = json.loads(received.data)
    assert (resource["bucket"], resource["name"]) == (UPLOADS_BUCKET, "users/u1/photo.jpg")


# -- wiring -----------------------------------------------------------------------------------


def test_cloud_ports_reach_the_emulators_without_credentials(
    publisher: Any, subscriber: Any, storage_client: Any, bucket: str
) -> None:
    # No credentials exist here: each client must pick anonymous ones for its emulator.
    ports = cloud_ports(Settings.from_env(environ={}, project=PROJECT))
    subscription = subscribe(publisher, subscriber, topic_for("segment"))
    job = new_job()

    _, created = ports.jobs.create(job)
    ports.bus.publish(StageMessage(job_id=job.id, stage="segment"))
    url = ports.blobs.write(bucket, f"work/{job.id}/cutout.png", b"png", "image/png")

    assert created and ports.jobs.get(job.id) == job
    assert dict(pull(subscriber, subscription).attributes)["jobId"] == job.id
    assert url == f"gs://{bucket}/work/{job.id}/cutout.png"
    assert storage_client.bucket(bucket).blob(f"work/{job.id}/cutout.png").exists()


def test_claim_lets_one_of_two_instances_work_and_the_other_wait(
    firestore_client: Any,
) -> None:
    job = new_job()
    FirestoreJobStore(firestore_client).create(job)
    instances = [FirestoreJobStore(firestore_client), FirestoreJobStore(firestore.Client(PROJECT))]
    start = threading.Barrier(2)

    def claim(store: FirestoreJobStore, owner: str) -> Claim:
        start.wait()
        return store.claim(job.id, "segment", owner, 60, PIPELINES["closet"])[1]

    with ThreadPoolExecutor(max_workers=2) as pool:
        found = sorted(pool.map(claim, instances, ["instance-a", "instance-b"]))

    assert found == sorted([Claim.CLAIMED, Claim.HELD])
    stored = instances[0].get(job.id)
    assert stored is not None
    record = stored.stages["segment"]
    assert record.attempts == 1 and record.lease is not None
    assert record.lease.owner in ("instance-a", "instance-b")


def test_claim_of_a_recorded_step_or_a_finished_job_changes_nothing(
    jobs: FirestoreJobStore,
) -> None:
    job = new_job()
    jobs.create(job)
    jobs.advance(job.id, JobUpdate(stages={"segment": StageRecord(status=StageStatus.DONE)}))

    _, recorded = jobs.claim(job.id, "segment", "me", 60, PIPELINES["closet"])
    jobs.advance(job.id, JobUpdate(status=JobStatus.FAILED))
    _, closed = jobs.claim(job.id, "expand", "me", 60, PIPELINES["closet"])

    assert (recorded, closed) == (Claim.RECORDED, Claim.CLOSED)


def test_stale_finds_unfinished_jobs_not_changed_for_a_while(jobs: FirestoreJobStore) -> None:
    waiting, finished = new_job(), new_job()
    jobs.create(waiting)
    jobs.create(finished)
    jobs.advance(finished.id, JobUpdate(status=JobStatus.DONE))
    time.sleep(0.05)
    cutoff = utcnow()

    found = {job.id for job in jobs.stale(cutoff, 500)}

    assert waiting.id in found and finished.id not in found
    assert all(job.updated_at < cutoff for job in jobs.stale(cutoff, 500))

from common.adapters.memory import MemoryJobStore
from common.schemas import (
    Job,
    JobStatus,
    JobUpdate,
    Source,
    StageRecord,
    StageStatus,
    apply_update,
)


def new_job(job_id: str = "job-000001") -> Job:
    return Job(
        id=job_id, uid="u1", source=Source(bucket="b", name="users/u1/a.jpg", generation="1")
    )


def test_progress_never_decreases():
    job = apply_update(new_job(), JobUpdate(progress=60))
    assert job is not None

    later = apply_update(job, JobUpdate(progress=35))

    assert later is not None
    assert later.progress == 60


def test_progress_reaches_100_only_with_done():
    running = apply_update(new_job(), JobUpdate(progress=100))
    done = apply_update(new_job(), JobUpdate(progress=100, status=JobStatus.DONE))

    assert running is not None and running.progress == 99
    assert done is not None and done.progress == 100


def test_terminal_job_never_changes_again():
    failed = apply_update(new_job(), JobUpdate(status=JobStatus.FAILED, message="bad"))
    assert failed is not None

    assert apply_update(failed, JobUpdate(status=JobStatus.DONE, progress=100)) is None


def test_stage_records_merge_field_by_field():
    started = apply_update(
        new_job(),
        JobUpdate(stages={"segment": StageRecord(status=StageStatus.RUNNING, attempts=1)}),
    )
    assert started is not None

    finished = apply_update(
        started, JobUpdate(stages={"segment": StageRecord(status=StageStatus.DONE, ms=42)})
    )

    assert finished is not None
    record = finished.stages["segment"]
    assert (record.status, record.ms, record.attempts) == (StageStatus.DONE, 42, 1)


def test_wire_format_is_camel_case_without_nulls():
    wire = new_job().to_wire()

    assert {"createdAt", "updatedAt", "cacheHit", "progress", "status"} <= wire.keys()
    assert "error" not in wire and "created_at" not in wire


def test_memory_store_creates_once_and_notifies_listeners():
    store = MemoryJobStore()
    seen: list[tuple[str, int]] = []
    job, created = store.create(new_job())
    again, created_again = store.create(new_job().model_copy(update={"uid": "other"}))
    unsubscribe = store.listen(job.id, lambda j: seen.append((j.status.value, j.progress)))

    store.advance(job.id, JobUpdate(status=JobStatus.RUNNING, progress=10))
    unsubscribe()
    store.advance(job.id, JobUpdate(progress=35))

    assert created and not created_again
    assert again.uid == "u1"
    assert seen == [("queued", 0), ("running", 10)]

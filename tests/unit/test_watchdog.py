"""The stuck-job watchdog: a job with no progress is re-driven once, then times out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from common.adapters.inline import InlineBus
from common.adapters.memory import MemoryJobStore
from common.errors import InvalidImage
from common.pipelines import PIPELINES
from common.runtime import run_stage
from common.schemas import Job, JobStatus, Source, StageMessage, utcnow
from common.topology import load
from common.watchdog import Watchdog, pending_messages
from tests.unit.test_runtime import CountingStage

LATER = timedelta(hours=1)


@pytest.fixture
def jobs() -> MemoryJobStore:
    return MemoryJobStore()


def new_job(jobs: MemoryJobStore, job_id: str = "job-stuck-1") -> Job:
    job, _ = jobs.create(
        Job(id=job_id, uid="u", source=Source(bucket="b", name="users/u/x.jpg", generation="1"))
    )
    return job


def at(stage: str, jobs: MemoryJobStore, bus: InlineBus) -> None:
    """Run the closet pipeline's stages up to `stage`, whose message is then lost."""
    message = StageMessage(job_id="job-stuck-1", stage="ingest", refs={"upload": "x"})
    while message.stage != stage:
        run_stage(CountingStage(message.stage), message, jobs, bus)
        popped = bus.pop()
        assert popped is not None
        message = popped


def test_a_job_whose_message_was_lost_is_redriven_from_the_recorded_handoff(jobs) -> None:
    bus = InlineBus()
    new_job(jobs)
    at("segment", jobs, bus)  # the segment message is lost: popped and never delivered
    watchdog = Watchdog(jobs, bus, load())

    report = watchdog.sweep(utcnow() + LATER)

    assert report.redriven == ["job-stuck-1"]
    resent = bus.pop()
    assert resent is not None and resent.stage == "segment"
    assert resent.refs["remove_background-out"] == "work/job-stuck-1/x"
    job = jobs.get("job-stuck-1")
    assert job is not None and job.redrives == 1 and not job.status.terminal
    # The re-driven message finishes the job's step as any delivery would.
    run_stage(CountingStage("segment"), resent, jobs, bus)
    assert jobs.get("job-stuck-1").stages["segment"].status.value == "done"  # type: ignore[union-attr]


def test_stuck_again_after_a_redrive_it_times_out_naming_the_stage(jobs) -> None:
    bus = InlineBus()
    new_job(jobs)
    at("expand", jobs, bus)
    watchdog = Watchdog(jobs, bus, load())
    watchdog.sweep(utcnow() + LATER)
    bus.pop()  # lost again: the function is still down

    report = watchdog.sweep(utcnow() + 2 * LATER)

    assert report.timed_out == ["job-stuck-1"]
    job = jobs.get("job-stuck-1")
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error is not None and (job.error.code, job.error.stage) == ("timeout", "expand")
    assert "after being resumed once" in job.error.message


def test_a_job_never_picked_up_is_redriven_with_its_first_message(jobs) -> None:
    bus = InlineBus()
    new_job(jobs)  # the upload's notification never reached ingest

    Watchdog(jobs, bus, load()).sweep(utcnow() + LATER)

    resent = bus.pop()
    assert resent is not None and resent.stage == "ingest" and resent.refs["upload"]


def test_young_held_and_finished_jobs_are_left_alone(jobs) -> None:
    bus = InlineBus()
    new_job(jobs)
    at("segment", jobs, bus)
    jobs.claim("job-stuck-1", "segment", "working-instance", 10 * 3600, PIPELINES["closet"])
    new_job(jobs, "job-done-1")
    run_stage(
        CountingStage("ingest", InvalidImage("not a photo")),
        StageMessage(job_id="job-done-1", stage="ingest"),
        jobs,
        InlineBus(),
    )
    watchdog = Watchdog(jobs, bus, load())

    young = watchdog.sweep(utcnow())
    held = watchdog.sweep(utcnow() + LATER)

    assert young.redriven == young.timed_out == []
    assert held.waiting == ["job-stuck-1"] and held.redriven == []


def test_the_deadline_of_a_stage_is_its_ack_deadline_plus_the_longest_backoff() -> None:
    topology = load()
    watchdog = Watchdog(MemoryJobStore(), InlineBus(), topology)

    segment = topology.function("segment")

    assert watchdog.deadline_s("segment") == segment.ack_deadline_s + topology.maximum_backoff_s
    assert Watchdog(MemoryJobStore(), InlineBus(), topology, 5.0).deadline_s("segment") == 5.0


def test_pending_message_of_a_tryon_starts_at_tryon_prepare(tmp_path: Path) -> None:
    job = Job(
        id="tryon-1",
        uid="u",
        kind="tryon",
        stage="tryon_prepare",
        source=Source(bucket="b", name="users/u/tryon/me.jpg", generation="1"),
    )

    [message] = pending_messages(job)

    assert (message.stage, message.kind) == ("tryon_prepare", "tryon")

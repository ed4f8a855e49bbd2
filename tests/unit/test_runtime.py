"""The stage runtime: delivery rules shared by every stage, local or cloud."""

import threading
import time

import pytest

from common.adapters.inline import InlineBus
from common.adapters.memory import MemoryJobStore
from common.errors import InvalidImage, TransientError
from common.pipelines import PIPELINES
from common.runtime import Delivery, StageOutcome, StepLeased, dead_letter, run_stage
from common.schemas import Job, JobStatus, Source, StageMessage, StageStatus


class CountingStage:
    """A stage whose behaviour the test chooses: succeed, or raise a given error."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.calls = 0

    def handle(self, message: StageMessage) -> StageOutcome:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return StageOutcome(backend="test", refs={f"{self.name}-out": f"work/{message.job_id}/x"})


CLOSET = PIPELINES["closet"]


@pytest.fixture
def jobs() -> MemoryJobStore:
    store = MemoryJobStore()
    store.create(Job(id="job-000001", uid="u", source=Source(bucket="b", name="n", generation="1")))
    return store


def message(stage: str) -> StageMessage:
    return StageMessage(job_id="job-000001", stage=stage, refs={"input": "work/job-000001/in"})


def test_success_publishes_next_stage_with_accumulated_refs(jobs):
    bus = InlineBus()
    stage = CountingStage("segment")

    delivery = run_stage(stage, message("segment"), jobs, bus)

    published = bus.pop()
    job = jobs.get("job-000001")
    assert delivery is Delivery.DONE
    assert published is not None and published.stage == "expand"
    assert published.refs == {"input": "work/job-000001/in", "segment-out": "work/job-000001/x"}
    assert job is not None and job.progress == 60 and job.status is JobStatus.RUNNING
    record = job.stages["segment"]
    assert record.status is StageStatus.DONE and record.backend == "test"
    assert record.ms is not None and record.attempts == 1 and record.ended_at is not None


def test_redelivered_message_for_a_recorded_step_does_no_work(jobs):
    bus = InlineBus()
    stage = CountingStage("segment")
    run_stage(stage, message("segment"), jobs, bus)
    next_message = bus.pop()
    assert next_message is not None
    run_stage(CountingStage("expand"), next_message, jobs, bus)

    delivery = run_stage(stage, message("segment"), jobs, bus)

    assert delivery is Delivery.DUPLICATE
    assert stage.calls == 1
    assert [m.stage for m in [bus.pop()]] == ["finalize"] and len(bus) == 0


def test_recorded_step_whose_next_stage_never_began_republishes_without_redoing(jobs):
    # The instance recorded the step, then died before its publish went out.
    bus = InlineBus()
    stage = CountingStage("segment")
    run_stage(stage, message("segment"), jobs, bus)
    lost = bus.pop()

    delivery = run_stage(stage, message("segment"), jobs, bus)

    republished = bus.pop()
    job = jobs.get("job-000001")
    assert delivery is Delivery.DUPLICATE and stage.calls == 1
    assert republished is not None and republished == lost
    assert job is not None and job.stages["segment"].attempts == 1


def test_failed_publish_is_raised_and_recorded_for_the_dead_letter(jobs):
    class BrokenBus(InlineBus):
        def publish(self, message: StageMessage) -> None:
            raise TransientError("publish timed out")

    with pytest.raises(TransientError):
        run_stage(CountingStage("segment"), message("segment"), jobs, BrokenBus())
    dead_letter(jobs, message("segment"))

    job = jobs.get("job-000001")
    assert job is not None and job.error is not None
    assert "publish timed out" in job.error.message


def test_job_document_records_a_step_before_the_next_one_is_published(jobs):
    seen_at_publish: list[str] = []

    class WatchingBus(InlineBus):
        def publish(self, message: StageMessage) -> None:
            job = jobs.get(message.job_id)
            assert job is not None
            seen_at_publish.append(job.stages["segment"].status.value)
            super().publish(message)

    run_stage(CountingStage("segment"), message("segment"), jobs, WatchingBus())

    assert seen_at_publish == ["done"]


def test_permanent_error_fails_the_job_with_its_code_and_acks(jobs):
    bus = InlineBus()

    delivery = run_stage(
        CountingStage("ingest", InvalidImage("not an image")), message("ingest"), jobs, bus
    )

    job = jobs.get("job-000001")
    assert delivery is Delivery.FAILED
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error is not None and (job.error.code, job.error.stage) == (
        "invalid_image",
        "ingest",
    )
    assert job.stages["ingest"].status is StageStatus.FAILED
    assert len(bus) == 0


def test_transient_error_raises_and_records_the_attempt(jobs):
    stage = CountingStage("segment", TransientError("503 from the model server"))

    for _ in range(2):
        with pytest.raises(TransientError):
            run_stage(stage, message("segment"), jobs, InlineBus())

    job = jobs.get("job-000001")
    assert job is not None and job.status is JobStatus.RUNNING
    assert job.stages["segment"].attempts == 2
    assert "503" in (job.stages["segment"].reason or "")


def test_dead_letter_fails_the_job_naming_stage_and_last_error(jobs):
    with pytest.raises(TransientError):
        run_stage(
            CountingStage("expand", TransientError("429 quota")),
            message("expand"),
            jobs,
            InlineBus(),
        )

    dead_letter(jobs, message("expand"))

    job = jobs.get("job-000001")
    assert job is not None and job.status is JobStatus.FAILED
    # The backend kept answering transient errors: the code says so.
    assert job.error is not None and job.error.code == "backend_unavailable"
    assert job.error.stage == "expand" and "429 quota" in job.error.message


def test_messages_for_finished_jobs_are_ignored(jobs):
    run_stage(CountingStage("ingest", InvalidImage("bad")), message("ingest"), jobs, InlineBus())
    later = CountingStage("segment")

    delivery = run_stage(later, message("segment"), jobs, InlineBus())

    assert delivery is Delivery.IGNORED and later.calls == 0


class BlockingStage(CountingStage):
    """Works until the test lets it finish: a delivery in flight."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.started = threading.Event()
        self.release = threading.Event()

    def handle(self, message: StageMessage) -> StageOutcome:
        self.started.set()
        assert self.release.wait(10)
        return super().handle(message)


def test_two_copies_at_once_do_the_work_once(jobs):
    stage = BlockingStage("expand")
    bus = InlineBus()
    first = threading.Thread(target=run_stage, args=(stage, message("expand"), jobs, bus))
    first.start()
    assert stage.started.wait(10)

    # The copy finds a live lease of another delivery: redelivered later, nothing done.
    with pytest.raises(StepLeased):
        run_stage(stage, message("expand"), jobs, bus)
    stage.release.set()
    first.join()
    later = run_stage(stage, message("expand"), jobs, bus)

    assert stage.calls == 1 and later is Delivery.DUPLICATE
    job = jobs.get("job-000001")
    assert job is not None and job.stages["expand"].attempts == 1
    assert job.stages["expand"].lease is None
    # The late copy found the next step not begun yet: it sent the recorded message again.
    sent = [bus.pop() for _ in range(len(bus))]
    assert {m.stage for m in sent if m is not None} == {"finalize"}


def test_an_expired_lease_of_a_dead_holder_is_taken_over(jobs):
    # A holder claimed the step and died (its process was killed) without recording it.
    jobs.claim("job-000001", "segment", "dead-instance", 0.05, CLOSET)
    stage = CountingStage("segment")
    with pytest.raises(StepLeased):
        run_stage(stage, message("segment"), jobs, InlineBus(), lease_s=30)
    time.sleep(0.1)

    delivery = run_stage(stage, message("segment"), jobs, InlineBus())

    assert delivery is Delivery.DONE and stage.calls == 1
    job = jobs.get("job-000001")
    assert job is not None and job.stages["segment"].attempts == 2


def test_a_transient_failure_frees_the_step_at_once(jobs):
    stage = CountingStage("segment", TransientError("503 from the model"))
    with pytest.raises(TransientError):
        run_stage(stage, message("segment"), jobs, InlineBus())
    stage.error = None

    delivery = run_stage(stage, message("segment"), jobs, InlineBus())

    assert delivery is Delivery.DONE and stage.calls == 2


def test_the_last_attempt_of_an_optional_step_skips_it_and_the_job_goes_on(jobs):
    stage = CountingStage("expand", TransientError("503 overloaded"))
    bus = InlineBus()
    for _ in range(2):
        with pytest.raises(TransientError):
            run_stage(stage, message("expand"), jobs, bus, max_attempts=3)

    delivery = run_stage(stage, message("expand"), jobs, bus, max_attempts=3)

    job = jobs.get("job-000001")
    assert delivery is Delivery.DONE and job is not None
    record = job.stages["expand"]
    assert record.status is StageStatus.SKIPPED and record.attempts == 3
    assert record.reason is not None and "gave up after 3 attempts" in record.reason
    following = bus.pop()
    assert following is not None and following.stage == "finalize"
    assert following.cacheable is False


def test_the_last_attempt_of_a_required_step_still_raises(jobs):
    stage = CountingStage("segment", TransientError("503 overloaded"))
    for _ in range(3):
        with pytest.raises(TransientError):
            run_stage(stage, message("segment"), jobs, InlineBus(), max_attempts=3)

    dead_letter(jobs, message("segment"))

    job = jobs.get("job-000001")
    assert job is not None and job.error is not None
    assert job.error.code == "backend_unavailable" and "3 times" in job.error.message


def test_the_dead_letter_leaves_a_step_another_delivery_holds(jobs):
    jobs.claim("job-000001", "segment", "live-instance", 60, CLOSET)

    dead_letter(jobs, message("segment"))

    job = jobs.get("job-000001")
    assert job is not None and not job.status.terminal

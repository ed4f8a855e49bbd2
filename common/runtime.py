"""Runs one stage for one message: idempotency, timing, progress, error mapping, next hop."""

from __future__ import annotations

from enum import StrEnum

from common import telemetry
from common.errors import ClosetError, PermanentError
from common.pipelines import PIPELINES
from common.ports import Bus, JobStore
from common.schemas import (
    JobError,
    JobStatus,
    JobUpdate,
    StageMessage,
    StageRecord,
    StageStatus,
    utcnow,
)
from common.stage import Stage, StageOutcome

__all__ = ["Delivery", "Stage", "StageOutcome", "dead_letter", "fail_job", "run_stage"]


class Delivery(StrEnum):
    """How a message was settled: every value but a raised exception acknowledges it."""

    DONE = "done"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


def run_stage(stage: Stage, message: StageMessage, jobs: JobStore, bus: Bus) -> Delivery:
    """Run `stage` once; raises (so the message is redelivered) only for transient errors."""
    job = jobs.get(message.job_id)
    if job is None:
        telemetry.message_skipped(message.job_id, stage.name, "no such job")
        return Delivery.IGNORED
    if job.status.terminal:
        telemetry.message_skipped(message.job_id, stage.name, f"job already {job.status}")
        return Delivery.IGNORED
    flow = PIPELINES.get(job.kind)
    if flow is None or stage.name not in flow.stages:
        telemetry.message_skipped(message.job_id, stage.name, f"not a stage of a {job.kind} job")
        return Delivery.IGNORED
    step = flow.step(stage.name)
    record = job.stages.get(stage.name)
    if record is not None and record.status.finished:
        following = flow.next_stage(stage.name)
        if following is None or following in job.stages:
            # At-least-once delivery: this step is recorded and the next one has begun.
            telemetry.message_skipped(message.job_id, stage.name, "step already recorded")
            return Delivery.DUPLICATE
        if record.handoff is not None:
            # Recorded, but the next stage never began: the publish after the record may
            # have been lost with its instance. Send the recorded message again; the work
            # itself is not repeated (no second paid call, no rewritten artefacts).
            _publish(jobs, bus, stage.name, record.status, record.handoff)
            telemetry.message_skipped(message.job_id, stage.name, "next step republished")
            return Delivery.DUPLICATE

    attempts = (record.attempts if record else 0) + 1
    jobs.advance(
        job.id,
        JobUpdate(
            status=JobStatus.RUNNING,
            stage=stage.name,
            message=step.activity,
            stages={
                stage.name: StageRecord(
                    status=StageStatus.RUNNING, started_at=utcnow(), attempts=attempts
                )
            },
        ),
    )
    telemetry.stage_started(job.id, stage.name, attempts)
    with telemetry.timer() as elapsed:
        try:
            outcome = stage.handle(message)
        except PermanentError as exc:
            outcome = None
            error = exc
        except Exception as exc:
            telemetry.stage_error(job.id, stage.name, exc, attempts)
            # Keep the last error on the record: the dead-letter handler reports it.
            jobs.advance(
                job.id,
                JobUpdate(
                    stages={stage.name: StageRecord(status=StageStatus.RUNNING, reason=_why(exc))}
                ),
            )
            raise
    if outcome is None:
        fail_job(jobs, job.id, stage.name, error.code, error.message, ms=elapsed[0])
        return Delivery.FAILED

    following = None if outcome.finished else flow.next_stage(stage.name)
    status = StageStatus.SKIPPED if outcome.skipped else StageStatus.DONE
    handoff = (
        StageMessage(
            job_id=job.id,
            kind=job.kind,
            stage=following,
            refs={**message.refs, **outcome.refs},
            cache_key=outcome.cache_key or message.cache_key,
            cacheable=message.cacheable and outcome.cacheable,
        )
        if following is not None
        else None
    )
    # Record, then publish: the job document tells the steps in the order they happened.
    # Dying in between leaves an unacknowledged message whose redelivery publishes again.
    jobs.advance(
        job.id,
        JobUpdate(
            status=JobStatus.DONE if outcome.finished else None,
            progress=100 if outcome.finished else step.progress,
            message=outcome.message
            or ("Done" if following is None else flow.step(following).activity),
            stage=following if following is not None else stage.name,
            stages={
                **outcome.other_stages,
                stage.name: StageRecord(
                    status=status,
                    backend=outcome.backend,
                    ended_at=utcnow(),
                    ms=elapsed[0],
                    reason=outcome.skipped,
                    handoff=handoff,
                ),
            },
            source=outcome.source,
            result=outcome.result,
            cache_hit=outcome.cache_hit or None,
        ),
    )
    if handoff is not None:
        _publish(jobs, bus, stage.name, status, handoff)
    telemetry.stage_finished(job.id, stage.name, elapsed[0], status.value)
    return Delivery.DONE


def _publish(
    jobs: JobStore, bus: Bus, stage: str, status: StageStatus, message: StageMessage
) -> None:
    """Publish the next hop; a failure is recorded on the step (for the dead letter) and raised."""
    try:
        bus.publish(message)
    except Exception as exc:
        telemetry.stage_error(message.job_id, stage, exc, 0)
        update = JobUpdate(stages={stage: StageRecord(status=status, reason=_why(exc))})
        jobs.advance(message.job_id, update)
        raise


def fail_job(
    jobs: JobStore,
    job_id: str,
    stage: str,
    code: str,
    message: str,
    *,
    ms: int | None = None,
    retryable: bool = False,
) -> None:
    """Mark the job failed with a stable code; the job never changes again."""
    telemetry.job_failed(job_id, stage, code, message)
    jobs.advance(
        job_id,
        JobUpdate(
            status=JobStatus.FAILED,
            stage=stage,
            message=message,
            error=JobError(code=code, message=message, stage=stage, retryable=retryable),
            stages={
                stage: StageRecord(
                    status=StageStatus.FAILED, ended_at=utcnow(), ms=ms, reason=message
                )
            },
        ),
    )


def dead_letter(jobs: JobStore, message: StageMessage) -> None:
    """A message that kept failing: the job fails with `stage_failed`, naming stage and error."""
    job = jobs.get(message.job_id)
    if job is None or job.status.terminal:
        return
    record = job.stages.get(message.stage)
    last = record.reason if record and record.reason else "no error was recorded"
    attempts = record.attempts if record else 0
    fail_job(
        jobs,
        job.id,
        message.stage,
        "stage_failed",
        f"{message.stage} failed {attempts} times; last error: {last}",
        retryable=True,
    )


def _why(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ClosetError) else str(exc)
    return f"{type(exc).__name__}: {text}"[:500]

"""Runs one stage for one message: idempotency, timing, progress, error mapping, next hops."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum

from common import telemetry
from common.errors import ClosetError, PermanentError, TransientError
from common.pipelines import PIPELINES, Pipeline
from common.ports import Bus, JobStore
from common.schemas import (
    Claim,
    Job,
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


# How long a claim on a step lasts when the caller names no deadline (the local runner).
DEFAULT_LEASE_S = 600.0


class StepLeased(TransientError):
    """Another delivery of the same message is working on the step: try again later."""


def run_stage(
    stage: Stage,
    message: StageMessage,
    jobs: JobStore,
    bus: Bus,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    max_attempts: int | None = None,
    pipelines: Mapping[str, Pipeline] = PIPELINES,
) -> Delivery:
    """Run `stage` once; raises (so the message is redelivered) only for transient errors.

    The step is claimed with a lease of `lease_s` first: one copy of a message works, another
    copy arriving meanwhile is redelivered later. On the last of `max_attempts` deliveries a
    transient error skips an optional step (the job goes on without it). The finished step
    starts the steps that wait for it (`JobStore.finish` decides which: a join starts once,
    when its last branch finishes).
    """
    job = jobs.get(message.job_id)
    if job is None:
        telemetry.message_skipped(message.job_id, stage.name, "no such job")
        return Delivery.IGNORED
    if job.status.terminal:
        telemetry.message_skipped(message.job_id, stage.name, f"job already {job.status}")
        return Delivery.IGNORED
    flow = pipelines.get(job.kind)
    if flow is None or stage.name not in flow.stages:
        telemetry.message_skipped(message.job_id, stage.name, f"not a stage of a {job.kind} job")
        return Delivery.IGNORED
    step = flow.step(stage.name)
    if (record := job.stages.get(stage.name)) is not None and record.status.finished:
        return _recorded(job, flow, stage.name, jobs, bus)

    owner = uuid.uuid4().hex
    job, found = jobs.claim(job.id, stage.name, owner, lease_s, flow)
    if found is Claim.CLOSED:
        telemetry.message_skipped(message.job_id, stage.name, f"job already {job.status}")
        return Delivery.IGNORED
    if found is Claim.RECORDED:
        return _recorded(job, flow, stage.name, jobs, bus)
    record = job.stages[stage.name]
    if found is Claim.HELD:
        lease = record.lease
        until = lease.expires_at.isoformat() if lease else "?"
        telemetry.message_skipped(message.job_id, stage.name, f"step leased until {until}")
        raise StepLeased(f"another delivery works on {stage.name} until {until}")
    attempts = record.attempts
    telemetry.stage_started(job.id, stage.name, attempts)
    error: PermanentError | None = None
    with telemetry.timer() as elapsed:
        try:
            outcome: StageOutcome | None = stage.handle(message)
        except PermanentError as exc:
            outcome = None
            error = exc
        except Exception as exc:
            telemetry.stage_error(job.id, stage.name, exc, attempts)
            # Our own count of the step's deliveries, or Pub/Sub's where it is higher (a push
            # without a dead-letter policy carries none).
            tries = max(message.attempt, attempts)
            last = max_attempts is not None and tries >= max_attempts
            if last and step.optional and isinstance(exc, TransientError):
                # The job goes on without this step rather than dying for an extra.
                outcome = StageOutcome(
                    skipped=f"gave up after {tries} attempts: {_why(exc)}",
                    cacheable=False,
                )
            else:
                # Keep the last error (and its code) on the record for the dead letter, and
                # free the step at once for the redelivery.
                code = exc.code if isinstance(exc, ClosetError) else None
                failed = StageRecord(
                    status=StageStatus.RUNNING, reason=_why(exc), code=code, lease=None
                )
                jobs.advance(job.id, JobUpdate(stages={stage.name: failed}))
                raise
    if outcome is None:
        assert error is not None
        closed = fail_job(jobs, job.id, stage.name, error.code, error.message, ms=elapsed[0])
        return Delivery.FAILED if closed else Delivery.IGNORED

    status = StageStatus.SKIPPED if outcome.skipped else StageStatus.DONE
    # What this step hands on; `finish` names the steps it starts (the message's `stage` is
    # the first of those that wait for it).
    following = () if outcome.finished else flow.following(stage.name)
    handoff = (
        StageMessage(
            job_id=job.id,
            kind=job.kind,
            stage=following[0],
            refs={**message.refs, **outcome.refs},
            cache_key=outcome.cache_key or message.cache_key,
            cacheable=message.cacheable and outcome.cacheable,
        )
        if following
        else None
    )
    record = StageRecord(
        status=status,
        backend=outcome.backend,
        ended_at=utcnow(),
        ms=elapsed[0],
        reason=outcome.skipped or outcome.reason,
        handoff=handoff,
        lease=None,
    )
    if outcome.code:
        record.code = outcome.code
    # Record, then publish: the job document tells the steps in the order they happened.
    # Dying in between leaves an unacknowledged message whose redelivery publishes again.
    job, starts = jobs.finish(
        job.id,
        stage.name,
        JobUpdate(
            status=JobStatus.DONE if outcome.finished else None,
            progress=100 if outcome.finished else step.progress,
            # None: the job says what the steps it waits on now do.
            message=outcome.message or ("Done" if not following else None),
            stage=stage.name if not following else None,
            stages={
                **outcome.other_stages,
                stage.name: record,
            },
            source=outcome.source,
            result=outcome.result,
            cache_hit=outcome.cache_hit or None,
        ),
        flow,
    )
    if starts is None:
        if job.status.terminal:  # failed meanwhile (another branch, the watchdog)
            telemetry.message_skipped(job.id, stage.name, f"job already {job.status}")
            return Delivery.IGNORED
        # Another delivery recorded the step while this one worked (its lease had expired).
        telemetry.message_skipped(job.id, stage.name, "step recorded by another delivery")
        return Delivery.DUPLICATE
    for start in starts:
        _publish(jobs, bus, stage.name, status, start)
    telemetry.stage_finished(job.id, stage.name, elapsed[0], status.value)
    return Delivery.DONE


def _recorded(job: Job, flow: Pipeline, stage: str, jobs: JobStore, bus: Bus) -> Delivery:
    """A delivery of a step already recorded: acknowledged without work."""
    record = job.stages[stage]
    lost = [following for following in record.published if following not in job.stages]
    if not lost:
        # At-least-once delivery: the steps this one started have begun (or it started none:
        # a branch that finished before the others of its join).
        telemetry.message_skipped(job.id, stage, "step already recorded")
        return Delivery.DUPLICATE
    # Recorded, but a step it started never began: the publish after the record may have been
    # lost with its instance. Send the recorded message again; the work itself is not repeated
    # (no second paid call, no rewritten artefacts), and no other step sends it.
    for following in lost:
        if (resent := flow.message_to(job, following)) is not None:
            _publish(jobs, bus, stage, record.status, resent)
    telemetry.message_skipped(job.id, stage, "next step republished")
    return Delivery.DUPLICATE


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
) -> bool:
    """Mark the job failed with a stable code; the job never changes again. False when it was
    closed already (another branch failed it first): nothing is written then."""
    error = JobError(code=code, message=message, stage=stage, retryable=retryable)
    failed = jobs.advance(
        job_id,
        JobUpdate(
            status=JobStatus.FAILED,
            stage=stage,
            message=message,
            error=error,
            stages={
                stage: StageRecord(
                    status=StageStatus.FAILED, ended_at=utcnow(), ms=ms, reason=message, lease=None
                )
            },
        ),
    )
    if failed.error != error:
        telemetry.message_skipped(job_id, stage, f"job already {failed.status}")
        return False
    telemetry.job_failed(job_id, stage, code, message)
    return True


def dead_letter(
    jobs: JobStore, message: StageMessage, pipelines: Mapping[str, Pipeline] = PIPELINES
) -> None:
    """A message Pub/Sub gave up on. The job fails naming the stage, the last error and its
    code (`backend_unavailable` when a backend kept failing, else `stage_failed`), unless the
    step is done and the job went on, another delivery still holds it, or the message never
    reached its function (then the stuck-job watchdog re-drives the job once, and times it out
    after that). A step recorded whose next message could never be published fails here."""
    job = jobs.get(message.job_id)
    if job is None or job.status.terminal:
        return
    record = job.stages.get(message.stage)
    if record is None:
        telemetry.message_skipped(job.id, message.stage, "dead-lettered before any attempt")
        return
    if record.status.finished and all(stage in job.stages for stage in record.published):
        telemetry.message_skipped(job.id, message.stage, "dead-lettered after the step was done")
        return
    if record.lease is not None and record.lease.expires_at > utcnow():
        telemetry.message_skipped(job.id, message.stage, "dead-lettered while the step is held")
        return
    last = record.reason or "no error was recorded"
    code = record.code if record.code in ("backend_unavailable",) else "stage_failed"
    fail_job(
        jobs,
        job.id,
        message.stage,
        code,
        f"{message.stage} failed {record.attempts} times; last error: {last}",
        retryable=True,
    )


def _why(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ClosetError) else str(exc)
    return f"{type(exc).__name__}: {text}"[:500]

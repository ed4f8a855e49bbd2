"""The stuck-job watchdog: no client waits forever.

Cloud Scheduler triggers a sweep every few minutes. A job that is neither done nor failed and
has not changed for longer than its stage's deadline (the stage's ack deadline plus the longest
retry backoff, or `CLOSET_STUCK_AFTER_S`) is re-driven once: the message its pending stage
needs is published again (the handoff recorded by the step before, or the pipeline's first
message). If it is stuck again, it fails with `timeout`, naming the stage. A step whose lease is
still live is not stuck: its holder is working.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from common import telemetry
from common.jobs import first_message
from common.pipelines import PIPELINES
from common.ports import Bus, JobStore
from common.runtime import fail_job
from common.schemas import Job, JobUpdate, StageMessage, utcnow
from common.topology import Topology

# How many stuck jobs one sweep takes on; the next sweep takes the rest.
SWEEP_LIMIT = 500


@dataclass
class Sweep:
    """What one sweep did, for its log line and for tests."""

    redriven: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    """Stale, but a live lease says a delivery is still working on them."""


class Watchdog:
    def __init__(
        self, jobs: JobStore, bus: Bus, topology: Topology, stuck_after_s: float | None = None
    ) -> None:
        self.jobs = jobs
        self.bus = bus
        self.topology = topology
        self.stuck_after_s = stuck_after_s

    def deadline_s(self, stage: str) -> float:
        """How long a job may sit at `stage` without any change before it counts as stuck."""
        if self.stuck_after_s is not None:
            return self.stuck_after_s
        try:
            spec = self.topology.function(stage)
        except KeyError:
            spec = self.topology.dead_letter
        return float(spec.ack_deadline_s + self.topology.maximum_backoff_s)

    def sweep(self, now: datetime | None = None) -> Sweep:
        now = now or utcnow()
        stages = [spec.name for spec in self.topology.functions]
        shortest = min(self.deadline_s(stage) for stage in stages)
        report = Sweep()
        for job in self.jobs.stale(_before(now, shortest), SWEEP_LIMIT):
            idle_s = (now - job.updated_at).total_seconds()
            if idle_s < self.deadline_s(job.stage):
                continue
            record = job.stages.get(job.stage)
            if record is not None and record.lease is not None and record.lease.expires_at > now:
                report.waiting.append(job.id)
                continue
            message = pending_message(job)
            if job.redrives >= 1 or message is None:
                fail_job(
                    self.jobs,
                    job.id,
                    job.stage,
                    "timeout",
                    f"no progress at {job.stage} for {idle_s:.0f} s"
                    + (" after being resumed once" if job.redrives else ""),
                    retryable=True,
                )
                report.timed_out.append(job.id)
                continue
            self.jobs.advance(
                job.id,
                JobUpdate(
                    redrives=job.redrives + 1,
                    message=f"Resuming: no progress at {job.stage} for {idle_s:.0f} s",
                ),
            )
            self.bus.publish(message)
            report.redriven.append(job.id)
        telemetry.log(
            logging.INFO if (report.redriven or report.timed_out) else logging.DEBUG,
            f"watchdog: {len(report.redriven)} re-driven, {len(report.timed_out)} timed out, "
            f"{len(report.waiting)} still held",
            redriven=report.redriven,
            timedOut=report.timed_out,
        )
        return report


def pending_message(job: Job) -> StageMessage | None:
    """The message the job's pending stage needs: the handoff of the step that feeds it, or
    the pipeline's first message; None when nothing recorded says how to go on."""
    flow = PIPELINES.get(job.kind)
    if flow is None or job.stage not in flow.stages:
        return None
    for stage in reversed(flow.stages):
        record = job.stages.get(stage)
        handoff = record.handoff if record is not None and record.status.finished else None
        if handoff is not None and handoff.stage == job.stage:
            return handoff.model_copy(update={"attempt": 1})
    if job.stage == flow.first:
        return first_message(job)
    return None


def _before(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)

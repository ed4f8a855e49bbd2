"""The stuck-job watchdog: no client waits forever.

Cloud Scheduler triggers a sweep every few minutes. A job that is neither done nor failed and
has not changed for longer than its stage's deadline (the stage's ack deadline plus the longest
retry backoff, or `CLOSET_STUCK_AFTER_S`) is re-driven once: the message each pending step
needs is published again (from the handoffs recorded by the steps it waits for, or the
pipeline's first message; with branches side by side, each unfinished branch's). If it is
stuck again, it fails with `timeout`, naming the stage. A step whose lease is still live is not
stuck: its holder is working.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from common import telemetry
from common.jobs import first_message
from common.pipelines import PIPELINES, Pipeline
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
        self,
        jobs: JobStore,
        bus: Bus,
        topology: Topology,
        stuck_after_s: float | None = None,
        pipelines: Mapping[str, Pipeline] = PIPELINES,
    ) -> None:
        self.jobs = jobs
        self.bus = bus
        self.topology = topology
        self.stuck_after_s = stuck_after_s
        self.pipelines = pipelines

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
            waiting_on = self.waiting_on(job)
            if idle_s < max(self.deadline_s(stage) for stage in waiting_on):
                continue
            if any(_held(job, stage, now) for stage in waiting_on):
                # A branch still works: the job changes when it finishes, and a lost sibling
                # is found on a later sweep.
                report.waiting.append(job.id)
                continue
            where = " and ".join(waiting_on)
            messages = pending_messages(job, self.pipelines)
            if job.redrives >= 1 or not messages:
                fail_job(
                    self.jobs,
                    job.id,
                    waiting_on[0],
                    "timeout",
                    f"no progress at {where} for {idle_s:.0f} s"
                    + (" after being resumed once" if job.redrives else ""),
                    retryable=True,
                )
                report.timed_out.append(job.id)
                continue
            self.jobs.advance(
                job.id,
                JobUpdate(
                    redrives=job.redrives + 1,
                    message=f"Resuming: no progress at {where} for {idle_s:.0f} s",
                ),
            )
            for message in messages:
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

    def waiting_on(self, job: Job) -> tuple[str, ...]:
        """The steps the job waits on (branches side by side), or its stage."""
        flow = self.pipelines.get(job.kind)
        return (flow.pending(job) if flow is not None else ()) or (job.stage,)


def _held(job: Job, stage: str, now: datetime) -> bool:
    record = job.stages.get(stage)
    return record is not None and record.lease is not None and record.lease.expires_at > now


def pending_messages(job: Job, pipelines: Mapping[str, Pipeline] = PIPELINES) -> list[StageMessage]:
    """The messages the job's pending steps need: each from the handoffs of the steps that feed
    it, or the pipeline's first message; empty when nothing recorded says how to go on."""
    flow = pipelines.get(job.kind)
    if flow is None:
        return []
    messages = []
    for stage in flow.pending(job):
        message = first_message(job) if stage == flow.first else flow.message_to(job, stage)
        if message is None:
            return []
        messages.append(message)
    return messages


def _before(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)

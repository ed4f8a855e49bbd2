"""The three ports stage logic depends on; each has a local and a cloud adapter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from common.graph import Pipeline
from common.schemas import Claim, Job, JobUpdate, StageMessage

JobListener = Callable[[Job], None]
Unsubscribe = Callable[[], None]


class JobStore(Protocol):
    """`jobs/{jobId}`: created once, then changed only through `advance`."""

    def create(self, job: Job) -> tuple[Job, bool]:
        """Store `job` unless its id exists; return the stored job and whether it is new."""
        ...

    def get(self, job_id: str) -> Job | None: ...

    def advance(self, job_id: str, update: JobUpdate) -> Job:
        """Apply `update` atomically under `schemas.apply_update`'s rules; return the job."""
        ...

    def claim(
        self, job_id: str, stage: str, owner: str, lease_s: float, flow: Pipeline
    ) -> tuple[Job, Claim]:
        """Atomically claim `stage` of `flow` for `owner` under `graph.claim_step`'s rules."""
        ...

    def finish(
        self, job_id: str, stage: str, update: JobUpdate, flow: Pipeline
    ) -> tuple[Job, list[StageMessage] | None]:
        """Atomically record `stage` finished and decide which steps it starts (fan-out, and a
        join only when every branch is finished) under `graph.finish_step`'s rules; return the
        job and the messages to publish, None when another delivery recorded the step first
        or the job is closed."""
        ...

    def stale(self, updated_before: datetime, limit: int) -> list[Job]:
        """Jobs neither done nor failed whose last change is older than `updated_before`."""
        ...

    def listen(self, job_id: str, callback: JobListener) -> Unsubscribe:
        """Call `callback` with the job now and after every change, until unsubscribed."""
        ...


class Bus(Protocol):
    def publish(self, message: StageMessage) -> None:
        """Send `message` to the topic that feeds `message.stage`."""
        ...


class BlobStore(Protocol):
    def read(self, bucket: str, name: str, *, generation: str | None = None) -> bytes:
        """The object's bytes (that generation's, when given); missing raises InvalidImage."""
        ...

    def write(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str,
        *,
        cache_control: str | None = None,
    ) -> str:
        """Store `data` at a deterministic path (overwriting) and return its URL."""
        ...

    def copy(self, bucket: str, source: str, target: str) -> str:
        """Copy an object within `bucket` (server-side where possible); return the copy's URL."""
        ...

    def exists(self, bucket: str, name: str) -> bool: ...

    def url(self, bucket: str, name: str) -> str: ...

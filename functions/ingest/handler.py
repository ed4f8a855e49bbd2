"""ingest: validate and decode the upload, create the job, short-circuit cache hits."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from common import cache, imaging
from common.config import Settings
from common.errors import ImageTooLarge
from common.ports import BlobStore, JobStore
from common.runtime import STAGES, StageOutcome
from common.schemas import (
    Job,
    Source,
    StageMessage,
    StageRecord,
    StageStatus,
    UploadEvent,
    utcnow,
)

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{6,128}$")
_USER_PATH = re.compile(r"^users/([^/]+)/.+")


def job_id_for(event: UploadEvent) -> str:
    """The client's `job-id` metadata when valid, else derived from the object's identity.

    Derived ids make a duplicated finalize event (same bucket, name, generation) the same job.
    """
    requested = event.metadata.get("job-id", "")
    if _JOB_ID.match(requested):
        return requested
    identity = f"{event.bucket}/{event.name}#{event.generation}".encode()
    return hashlib.sha256(identity).hexdigest()[:24]


def uid_for(event: UploadEvent, default: str) -> str:
    match = _USER_PATH.match(event.name)
    if match:
        return match.group(1)
    return event.metadata.get("uid") or default


def start_job(event: UploadEvent, jobs: JobStore, settings: Settings) -> tuple[Job, bool]:
    """Create the job document for an upload (once), and the message that starts ingest."""
    now = utcnow()
    job = Job(
        id=job_id_for(event),
        uid=uid_for(event, settings.default_uid),
        source=Source(
            bucket=event.bucket,
            name=event.name,
            generation=event.generation,
            content_type=event.content_type,
            size=event.size,
        ),
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(days=settings.job_ttl_days),
    )
    return jobs.create(job)


def first_message(job: Job) -> StageMessage:
    return StageMessage(job_id=job.id, stage="ingest", refs={"upload": job.source.name})


class Ingest:
    name = "ingest"

    def __init__(self, settings: Settings, blobs: BlobStore, jobs: JobStore) -> None:
        self.settings = settings
        self.blobs = blobs
        self.jobs = jobs

    def handle(self, message: StageMessage) -> StageOutcome:
        job = self.jobs.get(message.job_id)
        assert job is not None, "the runtime checked the job exists"
        settings = self.settings
        if job.source.size is not None and job.source.size > settings.max_bytes:
            # Refuse before downloading a huge object.
            raise ImageTooLarge(
                f"the upload is {job.source.size} bytes; the limit is {settings.max_bytes}"
            )
        data = self.blobs.read(job.source.bucket, job.source.name, generation=job.source.generation)
        sha256 = hashlib.sha256(data).hexdigest()
        source = job.source.model_copy(update={"sha256": sha256, "size": len(data)})
        cache_key = cache.cache_key(sha256, settings)
        if settings.cache and (hit := cache.lookup(self.blobs, settings, cache_key)) is not None:
            reason = "identical upload processed before"
            return StageOutcome(
                backend="cache",
                source=source,
                result=cache.materialize(self.blobs, settings, hit, job.id),
                finished=True,
                cache_hit=True,
                other_stages={
                    stage: StageRecord(status=StageStatus.SKIPPED, reason=reason)
                    for stage in STAGES[1:]
                },
                message="Done (identical photo processed before)",
            )

        decoded = imaging.decode(
            data,
            allowed_formats=settings.allowed_formats,
            max_bytes=settings.max_bytes,
            max_pixels=settings.max_pixels,
            min_side=settings.min_side,
            working_size=settings.working_size,
        )
        source = source.model_copy(update={"content_type": imaging.CONTENT_TYPES[decoded.format]})
        name = f"work/{job.id}/input.png"
        self.blobs.write(
            settings.work_bucket, name, imaging.encode_work(decoded.image), "image/png"
        )
        width, height = decoded.image.size
        return StageOutcome(
            backend=decoded.format,
            refs={"input": name},
            cache_key=cache_key,
            source=source,
            message=f"Photo accepted ({width}x{height})",
        )

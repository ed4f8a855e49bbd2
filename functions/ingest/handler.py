"""ingest: validate and decode the upload, create the job, short-circuit cache hits."""

from __future__ import annotations

import hashlib
from typing import Self

from common import cache, imaging
from common.config import Settings
from common.errors import ImageTooLarge
from common.pipelines import PIPELINES
from common.ports import BlobStore, JobStore
from common.schemas import StageMessage, StageRecord, StageStatus
from common.stage import StageContext, StageOutcome


class Ingest:
    name = "ingest"

    def __init__(self, settings: Settings, blobs: BlobStore, jobs: JobStore) -> None:
        self.settings = settings
        self.blobs = blobs
        self.jobs = jobs

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.jobs)

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
                result=cache.materialize(
                    self.blobs, settings, hit, cache.results_prefix(job.kind, job.id)
                ),
                finished=True,
                cache_hit=True,
                other_stages={
                    stage: StageRecord(status=StageStatus.SKIPPED, reason=reason)
                    for stage in PIPELINES["closet"].stages[1:]
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

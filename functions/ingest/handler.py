"""ingest: validate and decode the upload, create the job, short-circuit cache hits."""

from __future__ import annotations

from typing import Self

from common import cache, imaging, intake
from common.config import Settings
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
        data, source = intake.read_upload(self.blobs, settings, job.source)
        sha256 = source.sha256 or ""
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

        decoded = intake.decode(data, settings, settings.working_size)
        source = source.model_copy(update={"content_type": imaging.CONTENT_TYPES[decoded.format]})
        name = imaging.write_work(self.blobs, settings.work_bucket, job.id, "input", decoded.image)
        width, height = decoded.image.size
        return StageOutcome(
            backend=decoded.format,
            refs={"input": name},
            cache_key=cache_key,
            source=source,
            message=f"Photo accepted ({width}x{height})",
        )

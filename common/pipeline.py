"""The whole pipeline in one process: local adapters, every stage, Pub/Sub's delivery rules."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from common.adapters.folder import FolderBlobStore
from common.adapters.inline import InlineBus
from common.adapters.memory import MemoryJobStore
from common.backends.lazy import Backends
from common.config import Settings
from common.imaging import content_type_of
from common.jobs import first_message, start_job
from common.pipelines import PIPELINES, Pipeline, build_stage, warmer
from common.runtime import Stage, dead_letter, run_stage
from common.schemas import Job, UploadEvent
from common.stage import StageContext


class LocalPipeline:
    """In-process ports; transient failures retried with backoff, then dead-lettered."""

    def __init__(
        self,
        settings: Settings,
        *,
        results_dir: Path | None = None,
        backends: Backends | None = None,
        retry_delay_s: float = 0.2,
        kinds: tuple[str, ...] | None = None,
        pipelines: Mapping[str, Pipeline] = PIPELINES,
        stages: Mapping[str, Stage] | None = None,
    ) -> None:
        """`pipelines` and `stages` replace the declared ones (tests of the runner itself)."""
        self.settings = settings
        buckets = {settings.results_bucket: results_dir} if results_dir else {}
        self.blobs = FolderBlobStore(settings.blob_root, buckets)
        self.jobs = MemoryJobStore()
        self.bus = InlineBus()
        self.backends = backends or Backends(settings)
        self.retry_delay_s = retry_delay_s
        self.pipelines = pipelines
        context = StageContext(settings, self.blobs, self.jobs, self.backends)
        self.stages: dict[str, Stage] = dict(stages or {})
        for kind in kinds if kinds is not None else tuple(pipelines):
            for name in pipelines[kind].stages:
                if name not in self.stages:
                    # Every model loads now, so missing weights fail before any job starts.
                    warmer(name, self.backends)
                    self.stages[name] = build_stage(name, context)

    def upload(
        self,
        data: bytes,
        filename: str,
        uid: str,
        generation: str,
        *,
        folder: str = "",
        metadata: dict[str, str] | None = None,
    ) -> UploadEvent:
        """Put bytes in the uploads bucket the way a client would, and describe the event.

        `folder` picks the pipeline, as in the cloud: `tryon/` starts a try-on.
        """
        name = f"users/{uid}/{folder}{generation}-{Path(filename).name}"
        content_type = content_type_of(data)
        self.blobs.write(self.settings.uploads_bucket, name, data, content_type)
        return UploadEvent(
            bucket=self.settings.uploads_bucket,
            name=name,
            generation=generation,
            content_type=content_type,
            size=len(data),
            metadata=metadata or {},
        )

    def start(self, event: UploadEvent) -> Job:
        """What the uploads trigger does: create the job and publish its first message."""
        job, created = start_job(event, self.jobs, self.settings)
        if created:
            self.bus.publish(first_message(job))
        return job

    def drain(self) -> None:
        """Deliver queued messages until none is left, as Pub/Sub would: one at a time, so
        branches that run side by side in the cloud run one after the other here."""
        while (message := self.bus.pop()) is not None:
            stage = self.stages[message.stage]
            try:
                run_stage(
                    stage,
                    message,
                    self.jobs,
                    self.bus,
                    max_attempts=self.settings.max_attempts,
                    pipelines=self.pipelines,
                )
            except Exception:
                if message.attempt >= self.settings.max_attempts:
                    dead_letter(self.jobs, message, self.pipelines)
                    continue
                time.sleep(min(self.retry_delay_s * 2 ** (message.attempt - 1), 10.0))
                self.bus.publish(message.model_copy(update={"attempt": message.attempt + 1}))

    def adopt(self, job_json: Path) -> Job:
        """Take in a finished job of an earlier `closet run` (its job.json and images), so a
        try-on can name its items; the earlier output folder holds the images at their paths."""
        job = Job.model_validate_json(job_json.read_text())
        folder = job_json.parent.parent
        bucket = self.settings.results_bucket
        for item in job.result.items if job.result else []:
            for ref in (item.image, item.thumbnail):
                if not self.blobs.exists(bucket, ref.path):
                    data = (folder / ref.path).read_bytes()
                    self.blobs.write(bucket, ref.path, data, content_type_of(data))
        adopted, _ = self.jobs.create(job)
        return adopted

    def process(
        self,
        data: bytes,
        filename: str,
        uid: str = "local",
        *,
        folder: str = "",
        metadata: dict[str, str] | None = None,
    ) -> Job:
        """Run one upload through every stage; returns the final job document."""
        generation = str(time.time_ns())
        event = self.upload(data, filename, uid, generation, folder=folder, metadata=metadata)
        job = self.start(event)
        self.drain()
        final = self.jobs.get(job.id)
        assert final is not None
        return final

"""The whole pipeline in one process: local adapters, every stage, Pub/Sub's delivery rules."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from common.adapters.folder import FolderBlobStore
from common.adapters.inline import InlineBus
from common.adapters.memory import MemoryJobStore
from common.backends.background import BackgroundBackend, new_background
from common.backends.generative import GenerativeBackend, new_generative
from common.backends.segmentation import SegmentationBackend, new_segmentation
from common.config import Settings
from common.errors import ClosetError
from common.imaging import CONTENT_TYPES, sniff_format
from common.runtime import Stage, run_stage
from common.schemas import Job, UploadEvent
from functions.dead_letter.handler import DeadLetter
from functions.expand.handler import Expand
from functions.finalize.handler import Finalize
from functions.ingest.handler import Ingest, first_message, start_job
from functions.remove_background.handler import RemoveBackground
from functions.segment.handler import Segment


@dataclass
class Backends:
    background: BackgroundBackend
    segmentation: SegmentationBackend
    generative: GenerativeBackend | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        """Load every model now (missing weights fail here, before any job starts)."""
        return cls(
            background=new_background(settings),
            segmentation=new_segmentation(settings),
            generative=new_generative(settings),
        )


class LocalPipeline:
    """In-process ports; transient failures retried with backoff, then dead-lettered."""

    def __init__(
        self,
        settings: Settings,
        *,
        results_dir: Path | None = None,
        backends: Backends | None = None,
        retry_delay_s: float = 0.2,
    ) -> None:
        self.settings = settings
        buckets = {settings.results_bucket: results_dir} if results_dir else {}
        self.blobs = FolderBlobStore(settings.blob_root, buckets)
        self.jobs = MemoryJobStore()
        self.bus = InlineBus()
        self.backends = backends or Backends.from_settings(settings)
        self.retry_delay_s = retry_delay_s
        self.stages: dict[str, Stage] = {
            "ingest": Ingest(settings, self.blobs, self.jobs),
            "remove_background": RemoveBackground(settings, self.blobs, self.backends.background),
            "segment": Segment(settings, self.blobs, self.backends.segmentation),
            "expand": Expand(settings, self.blobs, self.backends.generative),
            "finalize": Finalize(settings, self.blobs),
        }
        self.dead_letter = DeadLetter(self.jobs)

    def upload(self, data: bytes, filename: str, uid: str, generation: str) -> UploadEvent:
        """Put bytes in the uploads bucket the way a client would, and describe the event."""
        name = f"users/{uid}/{generation}-{Path(filename).name}"
        try:
            content_type = CONTENT_TYPES[sniff_format(data)]
        except ClosetError:
            content_type = "application/octet-stream"
        self.blobs.write(self.settings.uploads_bucket, name, data, content_type)
        return UploadEvent(
            bucket=self.settings.uploads_bucket,
            name=name,
            generation=generation,
            content_type=content_type,
            size=len(data),
        )

    def start(self, event: UploadEvent) -> Job:
        """What the uploads trigger does: create the job and publish its first message."""
        job, created = start_job(event, self.jobs, self.settings)
        if created:
            self.bus.publish(first_message(job))
        return job

    def drain(self) -> None:
        """Deliver queued messages until none is left, as Pub/Sub would."""
        while (message := self.bus.pop()) is not None:
            stage = self.stages[message.stage]
            try:
                run_stage(stage, message, self.jobs, self.bus)
            except Exception:
                if message.attempt >= self.settings.max_attempts:
                    self.dead_letter.handle(message)
                    continue
                time.sleep(min(self.retry_delay_s * 2 ** (message.attempt - 1), 10.0))
                self.bus.publish(message.model_copy(update={"attempt": message.attempt + 1}))

    def process(self, data: bytes, filename: str, uid: str = "local") -> Job:
        """Run one upload through every stage; returns the final job document."""
        event = self.upload(data, filename, uid, generation=str(time.time_ns()))
        job = self.start(event)
        self.drain()
        final = self.jobs.get(job.id)
        assert final is not None
        return final

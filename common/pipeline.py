"""The whole pipeline in one process: local adapters, every stage, Pub/Sub's delivery rules."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

from common.adapters.folder import FolderBlobStore
from common.adapters.inline import InlineBus
from common.adapters.memory import MemoryJobStore
from common.backends.background import BackgroundBackend, new_background
from common.backends.generative import GenerativeBackend, new_generative
from common.backends.segmentation import SegmentationBackend, new_segmentation
from common.config import Settings
from common.imaging import content_type_of
from common.ports import BlobStore, JobStore
from common.runtime import STAGES, Stage, run_stage
from common.schemas import Job, UploadEvent
from functions.dead_letter.handler import DeadLetter
from functions.expand.handler import Expand
from functions.finalize.handler import Finalize
from functions.ingest.handler import Ingest, first_message, start_job
from functions.remove_background.handler import RemoveBackground
from functions.segment.handler import Segment


class Backends:
    """The model backends, each loaded on first use: a Cloud Run function loads only its own.

    Tests pass instances in; `generative=None` means "no credentials", not "load it".
    """

    def __init__(
        self,
        settings: Settings,
        *,
        background: BackgroundBackend | None = None,
        segmentation: SegmentationBackend | None = None,
        generative: GenerativeBackend | Literal["load"] | None = "load",
    ) -> None:
        self.settings = settings
        self._background = background
        self._segmentation = segmentation
        self._generative = generative

    @cached_property
    def background(self) -> BackgroundBackend:
        return self._background or new_background(self.settings)

    @cached_property
    def segmentation(self) -> SegmentationBackend:
        return self._segmentation or new_segmentation(self.settings)

    @cached_property
    def generative(self) -> GenerativeBackend | None:
        if self._generative == "load":
            return new_generative(self.settings)
        return self._generative

    def warmer(self, stage: str) -> Callable[[], None]:
        """Load the stage's model now and return how to touch it (a no-op for model-less ones)."""
        backend: BackgroundBackend | SegmentationBackend | GenerativeBackend | None = None
        if stage == "remove_background":
            backend = self.background
        elif stage == "segment":
            backend = self.segmentation
        elif stage == "expand":
            backend = self.generative
        return backend.warmup if backend is not None else _nothing

    def load_all(self) -> None:
        """Load every model now, so missing weights fail before any job starts."""
        for stage in STAGES:
            self.warmer(stage)


def _nothing() -> None:
    """Stages without a model have nothing to warm."""


def make_stage(
    name: str, settings: Settings, blobs: BlobStore, jobs: JobStore, backends: Backends
) -> Stage:
    """The one wiring of stage names to handlers, for the local runner and the functions."""
    if name == "ingest":
        return Ingest(settings, blobs, jobs)
    if name == "remove_background":
        return RemoveBackground(settings, blobs, backends.background)
    if name == "segment":
        return Segment(settings, blobs, backends.segmentation)
    if name == "expand":
        return Expand(settings, blobs, backends.generative)
    if name == "finalize":
        return Finalize(settings, blobs)
    raise ValueError(f"no stage called {name!r}")


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
        self.backends = backends or Backends(settings)
        self.backends.load_all()
        self.retry_delay_s = retry_delay_s
        self.stages: dict[str, Stage] = {
            name: make_stage(name, settings, self.blobs, self.jobs, self.backends)
            for name in STAGES
        }
        self.dead_letter = DeadLetter(self.jobs)

    def upload(self, data: bytes, filename: str, uid: str, generation: str) -> UploadEvent:
        """Put bytes in the uploads bucket the way a client would, and describe the event."""
        name = f"users/{uid}/{generation}-{Path(filename).name}"
        content_type = content_type_of(data)
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

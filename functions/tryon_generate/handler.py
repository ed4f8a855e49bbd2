"""tryon_generate: the configured backend dresses the person; its own states become progress."""

from __future__ import annotations

import time
from typing import Self

from common import imaging
from common.backends.tryon import TryonBackend, TryonRequest
from common.config import Settings
from common.ports import BlobStore, JobStore
from common.schemas import JobUpdate, StageMessage
from common.stage import StageContext, StageOutcome

PROGRESS_INTERVAL_S = 1.0


class TryonGenerate:
    name = "tryon_generate"

    def __init__(
        self, settings: Settings, blobs: BlobStore, jobs: JobStore, backend: TryonBackend
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.jobs = jobs
        self.backend = backend

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.jobs, context.backends.tryon)

    def handle(self, message: StageMessage) -> StageOutcome:
        work = self.settings.work_bucket
        refs = message.refs
        request = TryonRequest(
            person=imaging.open_work(self.blobs.read(work, refs["person"])),
            garment=imaging.open_work(self.blobs.read(work, refs["garment"])),
            category=refs["category"],
            description=refs["description"],
        )

        last: list[float] = []

        def progress(text: str) -> None:
            # A backend's change of state, coalesced to one write a second at most (Firestore
            # sustains about one write a second per document); the stage's end is always
            # written by the runtime, so the latest state shows within a second or at the end.
            now = time.monotonic()
            if last and now - last[-1] < PROGRESS_INTERVAL_S:
                return
            last.append(now)
            self.jobs.advance(message.job_id, JobUpdate(message=text))

        dressed = self.backend.generate(request, progress)
        name = imaging.write_work(self.blobs, work, message.job_id, "tryon", dressed.convert("RGB"))
        return StageOutcome(backend=self.backend.name, refs={"tryon": name})

"""tryon_generate: the configured backend dresses the person; its own states become progress."""

from __future__ import annotations

from typing import Self

from common import imaging
from common.backends.tryon import TryonBackend, TryonRequest
from common.config import Settings
from common.ports import BlobStore, JobStore
from common.schemas import JobUpdate, StageMessage
from common.stage import StageContext, StageOutcome


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

        def progress(text: str) -> None:
            # Only a change of state is written: a few writes per job, well under Firestore's
            # one write a second per document.
            self.jobs.advance(message.job_id, JobUpdate(message=text))

        dressed = self.backend.generate(request, progress)
        name = f"work/{message.job_id}/tryon.png"
        self.blobs.write(work, name, imaging.encode_work(dressed.convert("RGB")), "image/png")
        return StageOutcome(backend=self.backend.name, refs={"tryon": name})

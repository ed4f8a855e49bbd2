"""remove_background: an RGBA cut-out of the working image through the configured backend."""

from __future__ import annotations

from typing import Self

from common import imaging, intake
from common.backends.background import BackgroundBackend
from common.config import Settings
from common.errors import NoGarmentFound
from common.ports import BlobStore
from common.schemas import StageMessage
from common.stage import StageContext, StageOutcome


class RemoveBackground:
    name = "remove_background"

    def __init__(self, settings: Settings, blobs: BlobStore, backend: BackgroundBackend) -> None:
        self.settings = settings
        self.blobs = blobs
        self.backend = backend

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.backends.background)

    def handle(self, message: StageMessage) -> StageOutcome:
        bucket = self.settings.work_bucket
        image = imaging.open_work(self.blobs.read(bucket, message.refs["input"]))
        cutout, backend = intake.cut_out(image, self.backend, NoGarmentFound, "photo")
        name = imaging.write_work(self.blobs, bucket, message.job_id, "cutout", cutout)
        return StageOutcome(backend=backend, refs={"cutout": name})

"""upscale: enlarge the subject when the largest frame would show it bigger than it is."""

from __future__ import annotations

from typing import Self

from common import imaging
from common.backends.upscale import UpscaleBackend
from common.config import Settings
from common.ports import BlobStore
from common.schemas import StageMessage, StudioPlan
from common.stage import StageContext, StageOutcome
from common.studio import WIDTH, required_subject_size

# Pixels kept around the subject's box: the resampling filter reads a little beyond the edge.
PAD = 8


class Upscale:
    name = "upscale"

    def __init__(self, settings: Settings, blobs: BlobStore, backend: UpscaleBackend) -> None:
        self.settings = settings
        self.blobs = blobs
        self.backend = backend

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.backends.upscale)

    def handle(self, message: StageMessage) -> StageOutcome:
        work = self.settings.work_bucket
        plan = StudioPlan.model_validate_json(self.blobs.read(work, message.refs["studio"]))
        assert plan.box is not None, "studio_prepare found the subject's box"
        left, top, right, bottom = plan.box
        width, height = right - left, bottom - top
        need = required_subject_size(plan.aspects, WIDTH, subject=(width, height))
        have = max(width, height)
        if have >= need:
            return StageOutcome(
                skipped=f"the subject is {have} px; the largest frame shows it at {need} px"
            )
        subject = imaging.open_work(self.blobs.read(work, message.refs["subject"]))
        crop = subject.crop(
            (
                max(0, left - PAD),
                max(0, top - PAD),
                min(subject.width, right + PAD),
                min(subject.height, bottom + PAD),
            )
        )
        larger = self.backend.upscale(crop, need / have)
        name = imaging.write_work(self.blobs, work, message.job_id, "subject-upscaled", larger)
        return StageOutcome(
            backend=f"{self.backend.name}/{self.backend.device}",
            refs={"upscaled": name},
            message=None,
        )

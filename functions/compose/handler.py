"""compose: the subject on its backdrop in every requested frame, 1080 px wide, encoded with
thumbnails and the manifest like every result, with the caption beside them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

from common import cache, imaging
from common.config import Settings
from common.outputs import Output, Results
from common.ports import BlobStore, JobStore
from common.schemas import Caption, ItemResult, Job, Result, StageMessage, StageStatus, StudioPlan
from common.stage import StageContext, StageOutcome
from common.studio import WIDTH, compose, place, subject_box


class Compose:
    name = "compose"

    def __init__(self, settings: Settings, blobs: BlobStore, jobs: JobStore) -> None:
        self.settings = settings
        self.blobs = blobs
        self.jobs = jobs
        self.results = Results(settings, blobs)

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.jobs)

    def handle(self, message: StageMessage) -> StageOutcome:
        job = self.jobs.get(message.job_id)
        assert job is not None, "the runtime checked the job exists"
        work = self.settings.work_bucket
        refs = message.refs
        plan = StudioPlan.model_validate_json(self.blobs.read(work, refs["studio"]))
        subject = imaging.open_work(self.blobs.read(work, refs.get("upscaled", refs["subject"])))
        backdrop = imaging.open_work(self.blobs.read(work, refs["backdrop"]))
        caption = (
            Caption.model_validate_json(self.blobs.read(work, refs["caption"]))
            if "caption" in refs
            else None
        )
        prefix = cache.results_prefix(message.kind, message.job_id)
        box = subject_box(subject)
        subject_size = (box[2] - box[0], box[3] - box[1])

        def shots() -> Iterator[Output]:
            for aspect in plan.aspects:
                shot = compose(subject, backdrop, aspect, WIDTH)
                stem = f"{prefix}/{aspect.replace(':', 'x')}"
                yield from self.results.image_and_thumbnail(stem, shot, max(shot.size))

        # Each frame encodes while the next one is composed.
        stored = self.results.store_all(shots())
        items = []
        for index, aspect in enumerate(plan.aspects):
            placement = place(subject_size, aspect, WIDTH)
            frame_w, frame_h = placement.frame
            items.append(
                ItemResult(
                    label=aspect,
                    bbox=placement.box,
                    area=placement.size[0] * placement.size[1] / (frame_w * frame_h),
                    image=stored[2 * index],
                    thumbnail=stored[2 * index + 1],
                )
            )
        notes = _notes(job)
        result = Result(
            items=items,
            manifest=f"{prefix}/manifest.json",
            caption=caption,
            notes=notes or None,
        )
        said = f" ({'; '.join(notes)})" if notes else ""
        return self.results.finished(message, result, "image", said)


def _notes(job: Job) -> list[str]:
    """What the shots lack of what was asked: a backdrop that fell back, a caption not written."""
    notes = []
    backdrop = job.stages.get("backdrop")
    if backdrop is not None and backdrop.reason:
        notes.append(f"backdrop: {backdrop.reason}")
    caption = job.stages.get("caption")
    if caption is not None and caption.status is StageStatus.SKIPPED and caption.code:
        notes.append(f"no caption: {caption.reason}")
    return notes

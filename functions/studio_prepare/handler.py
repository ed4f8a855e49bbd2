"""studio_prepare: check the request, take the subject (the photo, or a closet item), cut it out
with the background backend, and note its box and colours for the steps after."""

from __future__ import annotations

from typing import Self

from common import imaging, intake
from common.backends.background import BackgroundBackend
from common.config import Settings
from common.errors import NoSubjectFound
from common.ports import BlobStore, JobStore
from common.schemas import Job, Source, StageMessage
from common.stage import StageContext, StageOutcome
from common.studio import WIDTH, palette, required_subject_size, subject_box, trimmed
from common.studio.request import plan_of

# The largest a studio photo is decoded and cut out at: larger costs more than an upscale.
WORKING_MAX = 2048


class StudioPrepare:
    name = "studio_prepare"

    def __init__(
        self, settings: Settings, blobs: BlobStore, jobs: JobStore, background: BackgroundBackend
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.jobs = jobs
        self.background = background

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.jobs, context.backends.background)

    def handle(self, message: StageMessage) -> StageOutcome:
        job = self.jobs.get(message.job_id)
        assert job is not None, "the runtime checked the job exists"
        plan = plan_of(job.inputs)
        data, source = self._photo(job)
        # A subject fills about half of a photo's long edge: decoded at twice the size the
        # largest frame shows it, a good photo needs no upscale (a small one gets one next).
        need = 2 * required_subject_size(plan.aspects, WIDTH)
        working = min(max(self.settings.working_size, need), WORKING_MAX)
        decoded = intake.decode(data, self.settings, working)
        what = "closet item" if job.inputs and job.inputs.subject else "photo"
        cutout, backend = intake.cut_out(decoded.image, self.background, NoSubjectFound, what)
        cutout = trimmed(cutout)
        plan = plan.model_copy(
            update={
                "size": cutout.size,
                "box": subject_box(cutout),
                "palette": list(palette(cutout, 3)),
            }
        )
        work = self.settings.work_bucket
        subject = imaging.write_work(self.blobs, work, job.id, "subject", cutout)
        planned = f"work/{job.id}/studio.json"
        self.blobs.write(
            work, planned, plan.model_dump_json(by_alias=True).encode(), "application/json"
        )
        return StageOutcome(
            backend=backend,
            refs={"subject": subject, "studio": planned},
            source=source.model_copy(
                update={"content_type": imaging.CONTENT_TYPES[decoded.format]}
            ),
        )

    def _photo(self, job: Job) -> tuple[bytes, Source]:
        """The subject's image: the closet item named in `subject`, or the upload itself."""
        named = job.inputs.subject if job.inputs else None
        if named:
            item = intake.closet_item(self.jobs, job.uid, named, "subject")
            data = self.blobs.read(self.settings.results_bucket, item.image.path)
            return data, job.source
        return intake.read_upload(self.blobs, self.settings, job.source)

"""caption: the words that go with the shots (title, story, hashtags, alt text) from the
subject and the facts given, in the requested language; the job goes on without them."""

from __future__ import annotations

from typing import Self

from PIL import Image

from common import imaging
from common.backends.caption import CaptionBackend
from common.config import Settings
from common.errors import BackendRefused, CaptionInvalid
from common.ports import BlobStore
from common.schemas import StageMessage, StudioPlan
from common.stage import StageContext, StageOutcome


class Caption:
    name = "caption"

    def __init__(self, settings: Settings, blobs: BlobStore, backend: CaptionBackend) -> None:
        self.settings = settings
        self.blobs = blobs
        self.backend = backend

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.backends.caption)

    def handle(self, message: StageMessage) -> StageOutcome:
        work = self.settings.work_bucket
        plan = StudioPlan.model_validate_json(self.blobs.read(work, message.refs["studio"]))
        subject = imaging.open_work(self.blobs.read(work, message.refs["subject"]))
        # The model sees the subject as it will be shown: on a plain light ground.
        shown = Image.new("RGB", subject.size, (245, 245, 245))
        shown.paste(subject, (0, 0), subject)
        name = self.backend.name
        try:
            caption = self.backend.caption(shown, plan.context, plan.language)
        except (CaptionInvalid, BackendRefused) as exc:
            # Words are an extra: the shots are delivered without them, and the job says why.
            return StageOutcome(backend=name, skipped=exc.message, code=exc.code)
        if caption is None:
            return StageOutcome(backend=name, skipped="no caption backend is configured")
        path = f"work/{message.job_id}/caption.json"
        self.blobs.write(
            work, path, caption.model_dump_json(by_alias=True).encode(), "application/json"
        )
        return StageOutcome(backend=name, refs={"caption": path})

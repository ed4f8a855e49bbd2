"""backdrop: draw the empty stage the subject stands on, in the requested style; a generative
backend that refuses or fails falls back to the gradient, and the job says why."""

from __future__ import annotations

from typing import Self

from common import imaging
from common.backends.backdrop import BackdropBackend, BackdropRequest, render_with_fallback
from common.config import Settings
from common.ports import BlobStore
from common.schemas import StageMessage, StudioPlan
from common.stage import StageContext, StageOutcome
from common.studio import WIDTH, frame_size


class Backdrop:
    name = "backdrop"

    def __init__(self, settings: Settings, blobs: BlobStore, backend: BackdropBackend) -> None:
        self.settings = settings
        self.blobs = blobs
        self.backend = backend

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.backends.backdrop)

    def handle(self, message: StageMessage) -> StageOutcome:
        work = self.settings.work_bucket
        plan = StudioPlan.model_validate_json(self.blobs.read(work, message.refs["studio"]))
        # One backdrop for every frame (one paid call): as tall as the tallest, cropped to each.
        height = max(frame_size(aspect, WIDTH)[1] for aspect in plan.aspects)
        request = BackdropRequest(
            style=plan.style,  # type: ignore[arg-type]  # checked by studio_prepare
            prompt=plan.prompt,
            size=(WIDTH, height),
            palette=tuple(plan.palette),
        )
        # A transient failure is retried while deliveries remain; the last one settles for the
        # gradient rather than failing the job.
        drawn = render_with_fallback(
            self.backend, request, retry_transient=message.attempt < self.settings.max_attempts
        )
        name = imaging.write_work(self.blobs, work, message.job_id, "backdrop", drawn.image)
        return StageOutcome(backend=drawn.backend, refs={"backdrop": name}, reason=drawn.fallback)

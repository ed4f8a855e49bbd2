"""expand: complete garments cut off by the frame and tag attributes, only where needed."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Self

import numpy as np
from PIL import Image

from common import imaging, telemetry
from common.backends.background.classic import ClassicBackground
from common.backends.generative import GenerativeBackend
from common.config import Settings
from common.errors import BackendUnavailable
from common.garments import garment_image, image_to_mask, touched_edges
from common.ports import BlobStore
from common.schemas import Expansion, Expansions, Garment, Segments, StageMessage
from common.stage import StageContext, StageOutcome

NO_CREDENTIALS = "no generative credentials (set GEMINI_API_KEY or GOOGLE_GENAI_USE_VERTEXAI)"


class Expand:
    name = "expand"

    def __init__(
        self, settings: Settings, blobs: BlobStore, backend: GenerativeBackend | None
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.backend = backend
        # The model draws the completed garment on a plain backdrop: exactly the case the
        # weightless border model handles, so no second background model is loaded here.
        self.keyer = ClassicBackground()

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.backends.generative)

    def handle(self, message: StageMessage) -> StageOutcome:
        if self.backend is None:
            return StageOutcome(skipped=NO_CREDENTIALS, message="Tagging skipped: no credentials")
        if not (self.settings.tagging or self.settings.completion):
            return StageOutcome(
                skipped="tagging and completion are both turned off",
                message="Tagging skipped: turned off",
            )
        bucket = self.settings.work_bucket
        segments = Segments.model_validate_json(self.blobs.read(bucket, message.refs["segments"]))
        cutout = imaging.open_work(self.blobs.read(bucket, message.refs["cutout"]))
        backend = self.backend

        def expand_one(index: int, garment: Garment) -> Expansion:
            mask = image_to_mask(imaging.open_work(self.blobs.read(bucket, garment.mask)))
            crop = garment_image(cutout, mask, garment.bbox)
            expansion = Expansion()
            edges = touched_edges(mask)
            if self.settings.completion and edges:
                completed = self._cut_out(backend.complete(crop, garment.label, edges))
                expansion.completed_image = imaging.write_work(
                    self.blobs, bucket, message.job_id, f"completed-{index}", completed
                )
                crop = completed
            if self.settings.tagging:
                expansion.attributes = backend.tag(crop, garment.label)
            return expansion

        try:
            with ThreadPoolExecutor(max_workers=min(8, len(segments.garments))) as pool:
                items = list(pool.map(expand_one, range(len(segments.garments)), segments.garments))
        except BackendUnavailable as exc:
            # Tags and completion enrich the result; a refusal should not cost the user the
            # garments themselves, so record why and carry on without them.
            telemetry.log(logging.WARNING, f"expand skipped: {exc.message}", jobId=message.job_id)
            return StageOutcome(
                backend=backend.name,
                skipped=f"{backend.name}: {exc.message}",
                message="Tagging skipped: the generative backend refused",
                # A later upload of the same photo should get its tags: don't cache this.
                cacheable=False,
            )
        name = f"work/{message.job_id}/expansions.json"
        expansions = Expansions(items=items)
        self.blobs.write(
            bucket, name, expansions.model_dump_json(by_alias=True).encode(), "application/json"
        )
        completed_count = sum(1 for item in items if item.completed_image)
        return StageOutcome(
            backend=backend.name,
            refs={"expansions": name},
            message=f"Tagged {len(items)} garment(s), completed {completed_count}",
        )

    def _cut_out(self, image: Image.Image) -> Image.Image:
        """The completed garment as RGBA: keep the model's alpha, else key out its backdrop."""
        if image.mode == "RGBA" and int(np.asarray(image.getchannel("A")).min()) < 255:
            return image
        keyed: Image.Image = self.keyer.remove(image.convert("RGB"))
        return keyed

"""remove_background: an RGBA cut-out of the working image through the configured backend."""

from __future__ import annotations

from typing import Self

import numpy as np

from common import imaging
from common.backends.background import BackgroundBackend
from common.config import Settings
from common.errors import NoGarmentFound
from common.ports import BlobStore
from common.schemas import StageMessage
from common.stage import StageContext, StageOutcome

# Below this share of visible pixels there is nothing worth calling a garment.
MIN_FOREGROUND = 0.001


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
        if image.mode == "RGBA":
            # The upload already has transparency (a cut-out): keep it rather than guess again.
            cutout, backend = image, "upload-alpha"
        else:
            cutout, backend = self.backend.remove(image.convert("RGB")), self.backend.name
        alpha = np.asarray(cutout.getchannel("A"))
        if float((alpha >= 128).mean()) < MIN_FOREGROUND:
            raise NoGarmentFound("nothing stands out from the background in this photo")
        name = f"work/{message.job_id}/cutout.png"
        self.blobs.write(bucket, name, imaging.encode_work(cutout), "image/png")
        return StageOutcome(backend=backend, refs={"cutout": name})

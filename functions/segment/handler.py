"""segment: one item per garment, with label, mask, bounding box and area."""

from __future__ import annotations

from typing import Self

import numpy as np

from common import imaging
from common.backends.segmentation import SegmentationBackend
from common.config import Settings
from common.errors import NoGarmentFound
from common.garments import bbox_of, mask_to_image
from common.ports import BlobStore
from common.schemas import Garment, Segments, StageMessage
from common.stage import StageContext, StageOutcome

MAX_ITEMS = 12


class Segment:
    name = "segment"

    def __init__(self, settings: Settings, blobs: BlobStore, backend: SegmentationBackend) -> None:
        self.settings = settings
        self.blobs = blobs
        self.backend = backend

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.backends.segmentation)

    def handle(self, message: StageMessage) -> StageOutcome:
        bucket = self.settings.work_bucket
        image = imaging.open_work(self.blobs.read(bucket, message.refs["input"]))
        cutout = imaging.open_work(self.blobs.read(bucket, message.refs["cutout"]))
        foreground = np.asarray(cutout.getchannel("A")) >= 128
        found = self.backend.segment(image.convert("RGB"), foreground)

        total = foreground.size
        garments: list[Garment] = []
        kept = [g for g in found if g.mask.sum() / total >= self.settings.min_garment_area]
        kept.sort(key=lambda g: int(g.mask.sum()), reverse=True)
        for index, found_garment in enumerate(kept[:MAX_ITEMS]):
            mask_name = imaging.write_work(
                self.blobs,
                bucket,
                message.job_id,
                f"mask-{index}",
                mask_to_image(found_garment.mask),
            )
            garments.append(
                Garment(
                    label=found_garment.label,
                    bbox=bbox_of(found_garment.mask),
                    area=round(float(found_garment.mask.sum()) / total, 5),
                    mask=mask_name,
                )
            )
        if not garments:
            raise NoGarmentFound("no garment large enough was found in this photo")
        height, width = foreground.shape
        segments = Segments(width=width, height=height, garments=garments)
        name = f"work/{message.job_id}/segments.json"
        self.blobs.write(
            bucket, name, segments.model_dump_json(by_alias=True).encode(), "application/json"
        )
        labels = ", ".join(g.label for g in garments)
        return StageOutcome(
            backend=self.backend.name,
            refs={"segments": name},
            message=f"Found {len(garments)} garment{'s' if len(garments) != 1 else ''}: {labels}",
        )

"""finalize: encode every output in parallel, upload to the results bucket, write the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

from common import cache, imaging
from common.config import Settings
from common.garments import garment_image, image_to_mask
from common.outputs import Output, Results
from common.ports import BlobStore
from common.schemas import Expansions, ItemResult, Result, Segments, StageMessage
from common.stage import StageContext, StageOutcome


class Finalize:
    name = "finalize"

    def __init__(self, settings: Settings, blobs: BlobStore) -> None:
        self.settings = settings
        self.blobs = blobs
        self.results = Results(settings, blobs)

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs)

    def handle(self, message: StageMessage) -> StageOutcome:
        if message.kind == "tryon":
            return self._tryon(message)
        return self._closet(message)

    def _tryon(self, message: StageMessage) -> StageOutcome:
        """One image: the person wearing the garment, with its thumbnail."""
        settings = self.settings
        dressed = imaging.open_work(self.blobs.read(settings.work_bucket, message.refs["tryon"]))
        prefix = cache.results_prefix(message.kind, message.job_id)
        outputs = self.results.image_and_thumbnail(
            f"{prefix}/tryon", dressed, settings.output_max_size
        )
        image, thumbnail = self.results.store_all(outputs)
        item = ItemResult(
            label=message.refs.get("category", "tryon"),
            bbox=(0, 0, dressed.width, dressed.height),
            area=1.0,
            image=image,
            thumbnail=thumbnail,
        )
        result = Result(items=[item], manifest=f"{prefix}/manifest.json")
        return self.results.finished(message, result, "image")

    def _closet(self, message: StageMessage) -> StageOutcome:
        settings = self.settings
        work = settings.work_bucket
        segments = Segments.model_validate_json(self.blobs.read(work, message.refs["segments"]))
        expansions = (
            Expansions.model_validate_json(self.blobs.read(work, message.refs["expansions"]))
            if "expansions" in message.refs
            else None
        )
        cutout = imaging.open_work(self.blobs.read(work, message.refs["cutout"]))
        prefix = cache.results_prefix(message.kind, message.job_id)

        def outputs() -> Iterator[Output]:
            yield Output(f"{prefix}/cutout.{self.results.ext}", cutout, settings.output_max_size)
            for index, garment in enumerate(segments.garments):
                expansion = expansions.items[index] if expansions else None
                if expansion and expansion.completed_image:
                    image = imaging.open_work(self.blobs.read(work, expansion.completed_image))
                else:
                    mask = image_to_mask(imaging.open_work(self.blobs.read(work, garment.mask)))
                    image = garment_image(cutout, mask, garment.bbox)
                stem = f"{prefix}/items/{index}-{garment.label}"
                yield from self.results.image_and_thumbnail(stem, image, settings.output_max_size)

        # Each image encodes while the next garment is cut.
        refs = self.results.store_all(outputs())

        items = []
        for index, garment in enumerate(segments.garments):
            expansion = expansions.items[index] if expansions else None
            items.append(
                ItemResult(
                    label=garment.label,
                    bbox=garment.bbox,
                    area=garment.area,
                    image=refs[1 + 2 * index],
                    thumbnail=refs[2 + 2 * index],
                    completed=bool(expansion and expansion.completed_image),
                    attributes=expansion.attributes if expansion else None,
                )
            )
        manifest = f"{prefix}/manifest.json"
        result = Result(items=items, cutout=refs[0], manifest=manifest)
        return self.results.finished(message, result, "garment image")

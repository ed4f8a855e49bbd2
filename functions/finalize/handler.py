"""finalize: encode every output in parallel, upload to the results bucket, write the manifest."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Self

from PIL import Image

from common import cache, imaging
from common.config import Settings
from common.garments import garment_image, image_to_mask
from common.ports import BlobStore
from common.schemas import Expansions, ImageRef, ItemResult, Result, Segments, StageMessage
from common.stage import StageContext, StageOutcome

# Result names are immutable per job; the work bucket never serves clients.
RESULT_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class _Output:
    name: str
    image: Image.Image
    max_size: int


class Finalize:
    name = "finalize"

    def __init__(self, settings: Settings, blobs: BlobStore) -> None:
        self.settings = settings
        self.blobs = blobs

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
        stem = f"{prefix}/tryon.{self._ext}"
        thumb = f"{prefix}/tryon.thumb.{self._ext}"
        outputs = [
            _Output(stem, dressed, settings.output_max_size),
            _Output(thumb, dressed, settings.thumbnail_size),
        ]
        image, thumbnail = self._store_all(outputs)
        item = ItemResult(
            label=message.refs.get("category", "tryon"),
            bbox=(0, 0, dressed.width, dressed.height),
            area=1.0,
            image=image,
            thumbnail=thumbnail,
        )
        return self._finished(message, Result(items=[item], manifest=f"{prefix}/manifest.json"))

    @property
    def _ext(self) -> str:
        fmt = self.settings.output_format
        return "jpg" if fmt == "jpeg" else fmt

    def _store_all(self, outputs: list[_Output]) -> list[ImageRef]:
        # Pillow releases the GIL while encoding, so threads give real parallelism here.
        with ThreadPoolExecutor(max_workers=self.settings.encode_workers) as pool:
            return list(pool.map(self._store, outputs))

    def _finished(self, message: StageMessage, result: Result) -> StageOutcome:
        settings = self.settings
        cache.write_manifest(self.blobs, settings, result)
        if settings.cache and message.cache_key and message.cacheable:
            cache.store(self.blobs, settings, message.cache_key, result)
        count = len(result.items)
        noun = "garment image" if message.kind == "closet" else "image"
        return StageOutcome(
            backend=settings.output_format,
            result=result,
            finished=True,
            message=f"Done: {count} {noun}{'s' if count != 1 else ''}",
        )

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
        ext = self._ext
        prefix = cache.results_prefix(message.kind, message.job_id)

        outputs = [_Output(f"{prefix}/cutout.{ext}", cutout, settings.output_max_size)]
        for index, garment in enumerate(segments.garments):
            expansion = expansions.items[index] if expansions else None
            if expansion and expansion.completed_image:
                image = imaging.open_work(self.blobs.read(work, expansion.completed_image))
            else:
                mask = image_to_mask(imaging.open_work(self.blobs.read(work, garment.mask)))
                image = garment_image(cutout, mask, garment.bbox)
            stem = f"{prefix}/items/{index}-{garment.label}"
            outputs.append(_Output(f"{stem}.{ext}", image, settings.output_max_size))
            outputs.append(_Output(f"{stem}.thumb.{ext}", image, settings.thumbnail_size))

        refs = self._store_all(outputs)

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
        return self._finished(message, Result(items=items, cutout=refs[0], manifest=manifest))

    def _store(self, output: _Output) -> ImageRef:
        settings = self.settings
        image = imaging.fit(output.image, output.max_size)
        data = imaging.encode(image, settings.output_format, quality=settings.output_quality)
        url = self.blobs.write(
            settings.results_bucket,
            output.name,
            data,
            imaging.CONTENT_TYPES[settings.output_format],
            cache_control=RESULT_CACHE_CONTROL,
        )
        return ImageRef(
            url=url,
            path=output.name,
            width=image.width,
            height=image.height,
            bytes=len(data),
            format=settings.output_format,
        )

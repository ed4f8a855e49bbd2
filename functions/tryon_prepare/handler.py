"""tryon_prepare: check the request, normalise both images for the backend, answer from cache."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Self

from PIL import Image

from common import cache, imaging, intake
from common.backends.tryon import CATEGORIES, TryonBackend, tryon_class
from common.config import Settings
from common.errors import InvalidRequest
from common.pipelines import PIPELINES
from common.ports import BlobStore, JobStore
from common.schemas import ItemResult, Job, StageMessage, StageRecord, StageStatus
from common.stage import StageContext, StageOutcome

# What each garment label is worn as; the other labels (hat, shoes, bag...) cannot be tried on.
CATEGORY_OF_LABEL = {
    "upper-clothes": "tops",
    "garment": "auto",
    "skirt": "bottoms",
    "pants": "bottoms",
    "dress": "one-pieces",
    "scarf": "tops",
}


@dataclass(frozen=True)
class Garment:
    item: ItemResult
    image: Image.Image
    digest: str


class TryonPrepare:
    name = "tryon_prepare"

    def __init__(
        self, settings: Settings, blobs: BlobStore, jobs: JobStore, backend: type[TryonBackend]
    ) -> None:
        self.settings = settings
        self.blobs = blobs
        self.jobs = jobs
        self.backend = backend

    @classmethod
    def from_context(cls, context: StageContext) -> Self:
        return cls(context.settings, context.blobs, context.jobs, tryon_class(context.settings))

    def handle(self, message: StageMessage) -> StageOutcome:
        job = self.jobs.get(message.job_id)
        assert job is not None, "the runtime checked the job exists"
        settings = self.settings
        garment = self._garment(job)
        category = self._category(job, garment.item)
        person_data = self._person_bytes(job)
        person = intake.decode(person_data, settings, self.backend.person_size)
        person_digest = hashlib.sha256(person_data).hexdigest()
        source = job.source.model_copy(update={"sha256": person_digest})
        options = {"category": category, **settings.tryon_fingerprint()}
        cache_key = cache.options_key(f"{person_digest}-{garment.digest[:32]}", options)
        if settings.cache and (hit := cache.lookup(self.blobs, settings, cache_key)) is not None:
            reason = "the same person and garment were tried on before"
            prefix = cache.results_prefix(job.kind, job.id)
            return StageOutcome(
                backend="cache",
                source=source,
                result=cache.materialize(self.blobs, settings, hit, prefix),
                finished=True,
                cache_hit=True,
                other_stages={
                    stage: StageRecord(status=StageStatus.SKIPPED, reason=reason)
                    for stage in PIPELINES["tryon"].stages[1:]
                },
                message="Done (tried on before)",
            )

        work = settings.work_bucket
        person_name = imaging.write_work(
            self.blobs, work, job.id, "person", person.image.convert("RGB")
        )
        garment_name = imaging.write_work(
            self.blobs, work, job.id, "garment", self._dressed(garment.image)
        )
        attributes = garment.item.attributes
        described = [garment.item.label.replace("-", " ")]
        if attributes:
            described = [", ".join(attributes.colors), attributes.pattern, attributes.category]
        width, height = person.image.size
        return StageOutcome(
            backend=self.backend.name,
            refs={
                "person": person_name,
                "garment": garment_name,
                "category": category,
                "description": " ".join(word for word in described if word),
            },
            cache_key=cache_key,
            source=source,
            message=f"Photos accepted (person {width}x{height}, the {garment.item.label} "
            f"as {category})",
        )

    def _garment(self, job: Job) -> Garment:
        named = job.inputs.garment if job.inputs else None
        item = intake.closet_item(self.jobs, job.uid, named, "garment")
        data = self.blobs.read(self.settings.results_bucket, item.image.path)
        image = imaging.open_remote(data).convert("RGBA")
        return Garment(item=item, image=image, digest=hashlib.sha256(data).hexdigest())

    def _category(self, job: Job, item: ItemResult) -> str:
        asked = job.inputs.category if job.inputs else None
        if asked:
            if asked not in CATEGORIES:
                raise InvalidRequest(
                    f"`category` must be one of {', '.join(CATEGORIES)}, got {asked!r}"
                )
            return asked
        category = CATEGORY_OF_LABEL.get(item.label.lower())
        if category is None:
            raise InvalidRequest(
                f"a {item.label} cannot be tried on; pick a top, bottoms or a dress"
            )
        return category

    def _person_bytes(self, job: Job) -> bytes:
        named = job.inputs.person if job.inputs and job.inputs.person else job.source.name
        if named == job.source.name:
            return intake.read_upload(self.blobs, self.settings, job.source)[0]
        if not named.startswith(f"users/{job.uid}/"):
            raise InvalidRequest("`person` must name a photo you uploaded (users/{uid}/...)")
        bucket = job.source.bucket
        if not self.blobs.exists(bucket, named):
            raise InvalidRequest(f"there is no uploaded photo {named}")
        return self.blobs.read(bucket, named)

    def _dressed(self, garment: Image.Image) -> Image.Image:
        """The garment as the backend wants it: on white, or with its transparency."""
        if self.backend.garment_on == "transparent":
            return garment
        white = Image.new("RGB", garment.size, "white")
        white.paste(garment, (0, 0), garment)
        return white

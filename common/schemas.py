"""The job document (the frontend's API), the stage message, and what stages hand each other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """camelCase on the wire (Firestore, Pub/Sub, job.json), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


class StageStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (StageStatus.DONE, StageStatus.SKIPPED)


class Source(Model):
    bucket: str
    name: str
    generation: str
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None


class Lease(Model):
    """Who works on a step now, and until when: a copy of the message finding a live lease of
    another owner waits (redelivery); an expired one (its holder died) may be taken over."""

    owner: str
    expires_at: datetime


class StageRecord(Model):
    status: StageStatus
    backend: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    ms: int | None = None
    attempts: int = 0
    reason: str | None = None
    handoff: StageMessage | None = None
    """What this step hands on (references only; `stage` names the first step after it)."""
    handed_to: list[str] | None = None
    """The steps this step started with its handoff: sent again only to those that never
    began (a lost publish). A branch finishing before the others of a join starts nothing."""
    lease: Lease | None = None
    code: str | None = None
    """The error code of the last failed attempt (the dead letter reports it)."""

    @property
    def published(self) -> list[str]:
        """The steps this step started (a record from before `handed_to`: its handoff's)."""
        if self.handed_to is not None:
            return self.handed_to
        return [self.handoff.stage] if self.handoff is not None else []


class ImageRef(Model):
    url: str
    path: str
    width: int
    height: int
    bytes: int
    format: str


BBox = tuple[int, int, int, int]
"""left, top, right, bottom in working-image pixels; right and bottom exclusive."""


class Attributes(Model):
    """Attribute tags of one garment: the schema of the generative model's structured output."""

    category: str = Field(description="garment category, e.g. t-shirt, jeans, dress, sneakers")
    colors: list[str] = Field(description="main colours, most prominent first, plain names")
    pattern: str = Field(description="solid, striped, checked, floral, printed, or other")
    seasons: list[Literal["spring", "summer", "autumn", "winter"]] = Field(
        description="seasons the garment suits"
    )


class ItemResult(Model):
    label: str
    bbox: BBox
    area: float
    image: ImageRef
    thumbnail: ImageRef
    completed: bool = False
    attributes: Attributes | None = None


STORY_MAX = 300
"""The longest caption story, in characters."""


class Caption(Model):
    """The words that go with a studio shot (the caption backends answer this shape)."""

    title: str
    story: str = Field(max_length=STORY_MAX)
    hashtags: list[str]
    alt_text: str
    language: str


class Result(Model):
    items: list[ItemResult]
    cutout: ImageRef | None = None
    """The whole cut-out (closet jobs)."""
    manifest: str | None = None
    caption: Caption | None = None
    """Studio: the caption, when one was written."""
    notes: list[str] | None = None
    """Studio: what the result lacks of what was asked (a backdrop that fell back to the
    gradient, a caption that could not be written), and why."""


class Inputs(Model):
    """What a job works on besides its upload (try-on: a closet item and a person photo)."""

    garment: str | None = None
    """A finished closet item of the same user, `{jobId}/items/{n}`."""
    person: str | None = None
    """The person photo in the uploads bucket: the upload itself, or an earlier upload of the
    same user named in metadata `person` (the upload is then only a request object)."""
    category: str | None = None
    """Asked for in metadata `category` (checked by the pipeline); unset: from the item's label."""
    subject: str | None = None
    """Studio: a finished closet item of the same user, `{jobId}/items/{n}`, instead of a photo."""
    style: str | None = None
    """Studio: `white`, `pastel`, `gradient` or `scene` (with `prompt`)."""
    prompt: str | None = None
    aspects: list[str] | None = None
    """Studio: the frames asked for (`1:1`, `4:5`, `9:16`), from metadata `aspect`."""
    context: str | None = None
    """Studio: facts for the caption (at most 2,000 characters)."""
    language: str | None = None


class JobError(Model):
    code: str
    message: str
    stage: str | None = None
    retryable: bool = False


class Job(Model):
    id: str
    uid: str
    kind: str = "closet"
    """The pipeline: `closet`, `tryon` (see `common.pipelines`)."""
    inputs: Inputs | None = None
    status: JobStatus = JobStatus.QUEUED
    stage: str = "ingest"
    progress: int = Field(default=0, ge=0, le=100)
    message: str = "Queued"
    source: Source
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    result: Result | None = None
    error: JobError | None = None
    cache_hit: bool = False
    redrives: int = 0
    """How often the stuck-job watchdog re-sent the job's pending message (at most once)."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None


class JobUpdate(Model):
    """One change to a job; `apply_update` applies it with the document's rules."""

    status: JobStatus | None = None
    stage: str | None = None
    progress: int | None = None
    message: str | None = None
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    source: Source | None = None
    result: Result | None = None
    error: JobError | None = None
    cache_hit: bool | None = None
    redrives: int | None = None


class Claim(StrEnum):
    """What a delivery found when it tried to claim its step."""

    CLAIMED = "claimed"
    RECORDED = "recorded"
    """The step is done or skipped already."""
    HELD = "held"
    """Another delivery holds a live lease on the step."""
    CLOSED = "closed"
    """The job is done or failed."""


def apply_claim(
    job: Job, stage: str, owner: str, lease_s: float, activity: str, now: datetime | None = None
) -> tuple[Job | None, Claim]:
    """The job with `stage` claimed by `owner` (None when unchanged), and what was found."""
    now = now or utcnow()
    if job.status.terminal:
        return None, Claim.CLOSED
    record = job.stages.get(stage)
    if record is not None and record.status.finished:
        return None, Claim.RECORDED
    lease = record.lease if record else None
    if lease is not None and lease.owner != owner and lease.expires_at > now:
        return None, Claim.HELD
    update = JobUpdate(
        status=JobStatus.RUNNING,
        stage=stage,
        message=activity,
        stages={
            stage: StageRecord(
                status=StageStatus.RUNNING,
                started_at=now,
                attempts=(record.attempts if record else 0) + 1,
                lease=Lease(owner=owner, expires_at=now + timedelta(seconds=lease_s)),
            )
        },
    )
    return apply_update(job, update, now), Claim.CLAIMED


def apply_update(job: Job, update: JobUpdate, now: datetime | None = None) -> Job | None:
    """The job after `update`, or None when the rules leave it unchanged.

    Rules shared by every JobStore: a terminal job never changes again; progress never
    decreases and reaches 100 only with `done`; stage records merge field by field.
    """
    if job.status.terminal:
        return None
    data = job.model_copy(deep=True)
    if update.status is not None:
        data.status = update.status
    if update.stage is not None:
        data.stage = update.stage
    if update.message is not None:
        data.message = update.message
    if update.progress is not None:
        data.progress = max(data.progress, update.progress)
    if data.status is not JobStatus.DONE:
        data.progress = min(data.progress, 99)
    else:
        data.progress = 100
    for name, record in update.stages.items():
        merged = data.stages[name].model_dump() if name in data.stages else {}
        merged.update(record.model_dump(exclude_unset=True))
        data.stages[name] = StageRecord.model_validate(merged)
    for attr in ("source", "result", "error", "cache_hit", "redrives"):
        value = getattr(update, attr)
        if value is not None:
            setattr(data, attr, value)
    data.updated_at = now or utcnow()
    return data


class StageMessage(Model):
    """What travels on the bus: references to artefacts, never image bytes."""

    job_id: str
    stage: str
    kind: str = "closet"
    refs: dict[str, str] = Field(default_factory=dict)
    cache_key: str | None = None
    cacheable: bool = True
    """False once a stage degraded the result: finalize then keeps it out of the cache."""
    attempt: int = 1


class UploadEvent(Model):
    """An object finalized in the uploads bucket, whatever the event format that carried it."""

    bucket: str
    name: str
    generation: str
    content_type: str | None = None
    size: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class Garment(Model):
    """One garment found by segmentation; its mask lives in the work bucket."""

    label: str
    bbox: BBox
    area: float = Field(description="fraction of the working image")
    mask: str = Field(description="work-bucket path of the garment's mask (PNG, mode L)")


class Segments(Model):
    width: int
    height: int
    garments: list[Garment]


class Expansion(Model):
    """What the expand stage adds to one garment (same order as `Segments.garments`)."""

    completed_image: str | None = None
    attributes: Attributes | None = None


class Expansions(Model):
    items: list[Expansion]


class StudioPlan(Model):
    """A studio job's request, checked, and its subject as studio_prepare found it."""

    style: str
    prompt: str | None = None
    aspects: list[str]
    context: str | None = None
    language: str
    size: tuple[int, int] | None = None
    """Width and height of the cut-out (`subject` in the work bucket)."""
    box: BBox | None = None
    """The subject's visible pixels in the cut-out."""
    palette: list[tuple[int, int, int]] = Field(default_factory=list)
    """The subject's main colours, most prominent first."""


StageRecord.model_rebuild()
JobUpdate.model_rebuild()
Job.model_rebuild()

"""A job from an upload: its id, its owner, its pipeline and inputs, and its first message."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from datetime import timedelta

from common.config import Settings
from common.pipelines import pipeline, pipeline_for_upload
from common.ports import JobStore
from common.schemas import Inputs, Job, Source, StageMessage, UploadEvent, utcnow

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{6,128}$")
_USER_PATH = re.compile(r"^users/([^/]+)/.+")


def is_job_id(text: str) -> bool:
    """A job id a client may name: the `job-id` metadata of an upload, or a path of the api."""
    return bool(_JOB_ID.match(text))


def new_job_id() -> str:
    """A fresh job id for an upload the api signs (it goes into the `job-id` metadata)."""
    return uuid.uuid4().hex


def job_id_for(event: UploadEvent) -> str:
    """The client's `job-id` metadata when valid, else derived from the object's identity.

    Derived ids make a duplicated finalize event (same bucket, name, generation) the same job.
    """
    requested = event.metadata.get("job-id", "")
    if is_job_id(requested):
        return requested
    identity = f"{event.bucket}/{event.name}#{event.generation}".encode()
    return hashlib.sha256(identity).hexdigest()[:24]


def uid_for(event: UploadEvent, default: str) -> str:
    match = _USER_PATH.match(event.name)
    if match:
        return match.group(1)
    return event.metadata.get("uid") or default


STUDIO_METADATA = ("subject", "style", "prompt", "aspect", "context", "language")
"""The custom metadata a studio upload may carry (besides `job-id`)."""


def studio_metadata(inputs: Inputs) -> dict[str, str]:
    """The upload metadata that asks for `inputs` (what `studio_inputs` reads back)."""
    options = {
        "subject": inputs.subject,
        "style": inputs.style,
        "prompt": inputs.prompt,
        "aspect": ",".join(inputs.aspects) if inputs.aspects else None,
        "context": inputs.context,
        "language": inputs.language,
    }
    return {key: value for key, value in options.items() if value}


def studio_inputs(metadata: Mapping[str, str]) -> Inputs:
    """A studio upload's metadata as given (`aspect` is comma-separated)."""
    aspects = [a.strip() for a in metadata.get("aspect", "").split(",") if a.strip()]
    return Inputs(
        subject=metadata.get("subject"),
        style=metadata.get("style"),
        prompt=metadata.get("prompt"),
        aspects=aspects or None,
        context=metadata.get("context"),
        language=metadata.get("language"),
    )


def inputs_for(kind: str, event: UploadEvent) -> Inputs | None:
    """What the upload's metadata names, as given: the pipeline's first stage checks it."""
    metadata = event.metadata
    if kind == "studio":
        return studio_inputs(metadata)
    if kind != "tryon":
        return None
    return Inputs(
        garment=metadata.get("garment"),
        person=metadata.get("person") or event.name,
        category=metadata.get("category"),
    )


def start_job(event: UploadEvent, jobs: JobStore, settings: Settings) -> tuple[Job, bool]:
    """Create the job document for an upload (once); True when this call created it."""
    now = utcnow()
    flow = pipeline_for_upload(event.name)
    job = Job(
        id=job_id_for(event),
        uid=uid_for(event, settings.default_uid),
        kind=flow.kind,
        stage=flow.first,
        inputs=inputs_for(flow.kind, event),
        source=Source(
            bucket=event.bucket,
            name=event.name,
            generation=event.generation,
            content_type=event.content_type,
            size=event.size,
        ),
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(days=settings.ttl_days(flow.kind)),
    )
    return jobs.create(job)


def first_message(job: Job) -> StageMessage:
    refs = {"upload": job.source.name}
    return StageMessage(job_id=job.id, stage=pipeline(job.kind).first, kind=job.kind, refs=refs)

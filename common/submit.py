"""Upload a photo the way a client app does, and follow its job live from Firestore."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from common.config import Settings
from common.imaging import content_type_of
from common.ports import JobListener
from common.schemas import Job


def upload(
    path: Path,
    uid: str,
    settings: Settings,
    *,
    folder: str = "",
    metadata: dict[str, str] | None = None,
) -> str:
    """Upload to `users/{uid}/{folder}` with a `job-id` chosen here, so the caller can listen at
    once. `folder` picks the pipeline (`tryon/`); `metadata` carries its options."""
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    job_id = uuid.uuid4().hex
    data = path.read_bytes()
    client = storage.Client(project=settings.project)
    name = f"users/{uid}/{folder}{job_id}-{path.name}"
    blob = client.bucket(settings.uploads_bucket).blob(name)
    blob.metadata = {**(metadata or {}), "job-id": job_id, "uid": uid}
    blob.upload_from_string(data, content_type=content_type_of(data))
    return job_id


def follow(job_id: str, settings: Settings, view: JobListener, timeout_s: float) -> Job | None:
    """Feed `view` every change of the job until it is done or failed; None on time-out."""
    from google.cloud import firestore  # type: ignore[attr-defined,unused-ignore]

    from common.adapters.firestore import FirestoreJobStore

    store = FirestoreJobStore(firestore.Client(project=settings.project))
    finished = threading.Event()
    last: list[Job] = []

    def on_change(job: Job) -> None:
        view(job)
        last[:] = [job]
        if job.status.terminal:
            finished.set()

    unsubscribe = store.listen(job_id, on_change)
    try:
        finished.wait(timeout_s)
    finally:
        unsubscribe()
    return last[0] if last and last[0].status.terminal else None

"""JobStore on Firestore: one document per job in `jobs`, each change a read and a write
conditional on the document being as it was read (optimistic concurrency)."""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from common.errors import TransientError
from common.graph import Pipeline, claim_step, finish_step
from common.ports import JobListener, Unsubscribe
from common.schemas import Claim, Job, JobUpdate, StageMessage, apply_update

Found = TypeVar("Found")

COLLECTION = "jobs"
# A write that finds the document changed since its read is retried from the read, after a
# random pause that grows with each try (the other writers are done in a few milliseconds).
WRITE_ATTEMPTS = 12
FIRST_PAUSE_S = 0.01
LONGEST_PAUSE_S = 0.5
# Advances of one job within a process take turns (see `advance`); a fixed set of locks keeps
# memory bounded however many jobs a long-lived instance sees.
LOCK_STRIPES = 64
# Documents this process last read or wrote, with their update times: the next change of the
# job starts from there instead of reading again (its write is conditional on that time, so a
# copy gone stale only costs the read it meant to save).
SEEN_JOBS = 256


def to_document(job: Job) -> dict[str, Any]:
    """The job's wire form (camelCase, no None) with datetimes kept as Firestore timestamps."""
    document: dict[str, Any] = _native(
        job.model_dump(mode="python", by_alias=True, exclude_none=True)
    )
    return document


def from_document(data: dict[str, Any]) -> Job:
    return Job.model_validate(data)


def _native(value: Any) -> Any:
    """Plain values Firestore stores as they are: enums by value, tuples as arrays."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _native(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_native(item) for item in value]
    if isinstance(value, datetime | str | int | float | bool) or value is None:
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a job document")


class FirestoreJobStore:
    def __init__(self, client: firestore.Client, collection: str = COLLECTION) -> None:
        self._client = client
        self._jobs = client.collection(collection)
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._seen: OrderedDict[str, tuple[dict[str, Any], Any]] = OrderedDict()
        self._seen_lock = threading.Lock()

    def _remember(self, job_id: str, data: dict[str, Any] | None, update_time: Any) -> None:
        with self._seen_lock:
            if data is None:
                self._seen.pop(job_id, None)
                return
            self._seen[job_id] = (data, update_time)
            self._seen.move_to_end(job_id)
            while len(self._seen) > SEEN_JOBS:
                self._seen.popitem(last=False)

    def _recall(self, job_id: str) -> tuple[dict[str, Any], Any] | None:
        with self._seen_lock:
            return self._seen.get(job_id)

    def create(self, job: Job) -> tuple[Job, bool]:
        try:
            # `create` fails if the document exists: a duplicated finalize event finds the job.
            document = to_document(job)
            written = self._jobs.document(job.id).create(document)
        except AlreadyExists:
            existing = self.get(job.id)
            if existing is None:  # deleted in between (TTL): nothing sensible left to return
                raise
            return existing, False
        self._remember(job.id, document, written.update_time)
        return job.model_copy(deep=True), True

    def get(self, job_id: str) -> Job | None:
        snapshot = self._jobs.document(job_id).get()
        data = snapshot.to_dict() if snapshot.exists else None
        self._remember(job_id, data, snapshot.update_time)
        return from_document(data) if data is not None else None

    def advance(self, job_id: str, update: JobUpdate) -> Job:
        return self._transact(job_id, lambda job: (apply_update(job, update), None))[0]

    def claim(
        self, job_id: str, stage: str, owner: str, lease_s: float, flow: Pipeline
    ) -> tuple[Job, Claim]:
        return self._transact(job_id, lambda job: claim_step(job, flow, stage, owner, lease_s))

    def finish(
        self, job_id: str, stage: str, update: JobUpdate, flow: Pipeline
    ) -> tuple[Job, list[StageMessage] | None]:
        # Decided from the document as the transaction reads it: of two branches finishing
        # at once, the one committing second sees the other done and alone starts the join.
        return self._transact(job_id, lambda job: finish_step(job, flow, stage, update))

    def stale(self, updated_before: datetime, limit: int) -> list[Job]:
        # Needs the composite index (status, updatedAt) that infra/ declares.
        query = (
            self._jobs.where(filter=FieldFilter("status", "in", ["queued", "running"]))
            .where(filter=FieldFilter("updatedAt", "<", updated_before))
            .order_by("updatedAt")
            .limit(limit)
        )
        documents = (snapshot.to_dict() for snapshot in query.stream())
        return [from_document(data) for data in documents if data is not None]

    def _transact(
        self, job_id: str, change: Callable[[Job], tuple[Job | None, Found]]
    ) -> tuple[Job, Found]:
        """Read the job, change it, and write it only if nobody wrote it since the read; None
        from `change` writes nothing.

        A conditional write, not a Firestore transaction: transactions of several instances
        on one document (the branches of a studio job claiming and finishing side by side)
        hold read locks that make each other wait and abort (the emulator times every such
        conflict out after seconds), where a write that lost the race costs one more read.
        The read is skipped when this process read or wrote the document last (the runtime's
        look at the job, then the claim and the finish: one read where there were three); a
        write from that copy is as conditional as one from a fresh read.
        """
        reference = self._jobs.document(job_id)
        # Changes of one job within a process take turns: they would only lose races to
        # each other.
        with self._locks[hash(job_id) % LOCK_STRIPES]:
            attempt = 0
            recalled = self._recall(job_id)
            data: dict[str, Any] | None
            while attempt < WRITE_ATTEMPTS:
                if recalled is not None:
                    data, update_time = recalled
                else:
                    snapshot = reference.get()
                    data = snapshot.to_dict() if snapshot.exists else None
                    update_time = snapshot.update_time
                    self._remember(job_id, data, update_time)
                if data is None:
                    raise KeyError(job_id)
                job = from_document(data)
                changed, found = change(job)
                if changed is None:
                    if recalled is not None:
                        # A decision to write nothing is taken on the document as it is now.
                        recalled = None
                        continue
                    return job, found
                document = to_document(changed)
                # Every top-level field is written: the new value, or deleted when it is gone.
                fields = {key: document.get(key, firestore.DELETE_FIELD) for key in data}
                fields |= document
                unchanged = self._client.write_option(last_update_time=update_time)
                try:
                    written = reference.update(fields, option=unchanged)
                except (FailedPrecondition, NotFound):
                    if recalled is not None:
                        recalled = None  # our copy was stale: read, no pause, no try lost
                        continue
                    pause = min(LONGEST_PAUSE_S, FIRST_PAUSE_S * 2**attempt)
                    time.sleep(random.uniform(0, pause))
                    attempt += 1
                    continue
                self._remember(job_id, document, written.update_time)
                return changed, found
        raise TransientError(
            f"job {job_id} changed under every one of {WRITE_ATTEMPTS} writes; try again later"
        )

    def listen(self, job_id: str, callback: JobListener) -> Unsubscribe:
        def on_snapshot(snapshots: Sequence[Any], changes: Any, read_time: Any) -> None:
            for snapshot in snapshots:
                data = snapshot.to_dict() if snapshot.exists else None
                if data is not None:  # not created yet: the memory store stays silent too
                    callback(from_document(data))

        watch = self._jobs.document(job_id).on_snapshot(on_snapshot)
        unsubscribe: Unsubscribe = watch.unsubscribe
        return unsubscribe

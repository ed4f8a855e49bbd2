"""In-memory JobStore with the same listener API as Firestore's on_snapshot."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime

from common.graph import Pipeline, claim_step, finish_step
from common.ports import JobListener, Unsubscribe
from common.schemas import Claim, Job, JobUpdate, StageMessage, apply_update


class MemoryJobStore:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._listeners: dict[str, list[JobListener]] = defaultdict(list)
        self._lock = threading.RLock()

    def create(self, job: Job) -> tuple[Job, bool]:
        with self._lock:
            existing = self._jobs.get(job.id)
            if existing is not None:
                return existing.model_copy(deep=True), False
            self._jobs[job.id] = job.model_copy(deep=True)
        self._notify(job.id)
        return job.model_copy(deep=True), True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.model_copy(deep=True) if job else None

    def advance(self, job_id: str, update: JobUpdate) -> Job:
        with self._lock:
            job = self._jobs[job_id]
            changed = apply_update(job, update)
            if changed is None:
                return job.model_copy(deep=True)
            self._jobs[job_id] = changed
        self._notify(job_id)
        return changed.model_copy(deep=True)

    def claim(
        self, job_id: str, stage: str, owner: str, lease_s: float, flow: Pipeline
    ) -> tuple[Job, Claim]:
        with self._lock:
            job = self._jobs[job_id]
            changed, found = claim_step(job, flow, stage, owner, lease_s)
            if changed is None:
                return job.model_copy(deep=True), found
            self._jobs[job_id] = changed
        self._notify(job_id)
        return changed.model_copy(deep=True), found

    def finish(
        self, job_id: str, stage: str, update: JobUpdate, flow: Pipeline
    ) -> tuple[Job, list[StageMessage] | None]:
        with self._lock:
            job = self._jobs[job_id]
            changed, messages = finish_step(job, flow, stage, update)
            if changed is None:
                return job.model_copy(deep=True), None
            self._jobs[job_id] = changed
        self._notify(job_id)
        return changed.model_copy(deep=True), messages

    def stale(self, updated_before: datetime, limit: int) -> list[Job]:
        with self._lock:
            found = [
                job.model_copy(deep=True)
                for job in self._jobs.values()
                if not job.status.terminal and job.updated_at < updated_before
            ]
        return sorted(found, key=lambda job: job.updated_at)[:limit]

    def listen(self, job_id: str, callback: JobListener) -> Unsubscribe:
        with self._lock:
            self._listeners[job_id].append(callback)
            job = self._jobs.get(job_id)
        if job is not None:
            callback(job.model_copy(deep=True))

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners[job_id]:
                    self._listeners[job_id].remove(callback)

        return unsubscribe

    def _notify(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id].model_copy(deep=True)
            listeners = list(self._listeners.get(job_id, ()))
        for callback in listeners:
            callback(job)

"""What a stage handler is: built from a context, handles one message, reports an outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from common.backends.lazy import Backends
from common.config import Settings
from common.ports import BlobStore, JobStore
from common.schemas import Result, Source, StageMessage, StageRecord


@dataclass
class StageOutcome:
    """What a stage handler reports back to the runtime."""

    backend: str | None = None
    refs: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    """Why the stage did nothing; the stage is then recorded as skipped."""
    code: str | None = None
    """A stable code for why it was skipped (e.g. `caption_invalid`), kept on its record."""
    reason: str | None = None
    """Why a step that did its work did it otherwise than asked (a backdrop that fell back)."""
    message: str | None = None
    cache_key: str | None = None
    source: Source | None = None
    result: Result | None = None
    finished: bool = False
    """True when the job is complete after this stage (the last stage, or a cache hit)."""
    cache_hit: bool = False
    other_stages: dict[str, StageRecord] = field(default_factory=dict)
    """Records for other stages, e.g. those a cache hit makes unnecessary."""
    cacheable: bool = True
    """False when the result lacks something a later try could add (e.g. a refused tagging)."""


class Stage(Protocol):
    name: str

    def handle(self, message: StageMessage) -> StageOutcome: ...


@dataclass(frozen=True)
class StageContext:
    """What a handler may use: settings, the ports, and its backends (loaded on first use)."""

    settings: Settings
    blobs: BlobStore
    jobs: JobStore
    backends: Backends

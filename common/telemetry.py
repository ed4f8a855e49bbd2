"""Logs: Cloud Logging's structured JSON (google-cloud-logging's handler), human lines on a
terminal; the request's trace on every line; stage timers."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Protocol, TextIO

LOGGER_NAME = "closet"

# The request's trace, as Cloud Logging wants it, so a job's log lines group under its request.
_trace: ContextVar[str | None] = ContextVar("closet_trace", default=None)


class Headers(Protocol):
    def get(self, key: str, default: str) -> str: ...


def trace_from_headers(headers: Headers | Mapping[str, str], project: str) -> str | None:
    """`projects/P/traces/T` from X-Cloud-Trace-Context or W3C traceparent, else None.

    Pass the request's own headers object: HTTP header names are case-insensitive.
    """
    cloud = headers.get("X-Cloud-Trace-Context", "")
    trace_id = cloud.split("/", 1)[0] if cloud else ""
    if not trace_id:
        parts = headers.get("traceparent", "").split("-")
        trace_id = parts[1] if len(parts) == 4 else ""
    return f"projects/{project}/traces/{trace_id}" if trace_id else None


@contextmanager
def traced(trace: str | None) -> Iterator[None]:
    """Attach `trace` to every log line written inside the block."""
    token = _trace.set(trace)
    try:
        yield
    finally:
        _trace.reset(token)


# Fields that become Cloud Logging labels: a job's lines are found by `labels.jobId="..."`.
LABELS = ("jobId", "stage")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is now (rich's live display redirects it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class HumanFormatter(logging.Formatter):
    """`12:03:04 WARNING  segment raised, will be retried  jobId=... stage=segment`."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = {**getattr(record, "labels", {}), **getattr(record, "json_fields", {})}
        extra = "".join(f"  {key}={value}" for key, value in fields.items())
        line = f"{when} {record.levelname:<8} {record.getMessage()}{extra}"
        if record.exc_info and record.levelno >= logging.ERROR:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _structured_handler(stream: TextIO | None, project: str | None) -> logging.Handler | None:
    """google-cloud-logging's StructuredLogHandler, with the trace of `traced()` blocks."""
    try:
        from google.cloud import logging_v2
        from google.cloud.logging_v2.handlers import StructuredLogHandler
    except ImportError:  # a base install without the `cloud` group
        return None

    class CloudHandler(StructuredLogHandler):
        def handle(self, record: logging.LogRecord) -> bool:
            trace = _trace.get()
            if trace and not hasattr(record, "trace"):
                # Cloud Logging wants `projects/P/traces/T`; the handler alone may not know P.
                record.trace = trace
            handled: bool = super().handle(record)
            return handled

        def emit(self, record: logging.LogRecord) -> None:
            if stream is None:
                self.stream = sys.stderr  # whatever it is now, as `_Stderr` does
            super().emit(record)  # type: ignore[no-untyped-call]

    handler = CloudHandler(stream=stream, project_id=project)  # type: ignore[no-untyped-call]
    # Not the library's diagnostic line on the first record: it is an INFO of its own
    # logger, written through this handler twice (itself and the root).
    logging_v2._instrumentation_emitted = True
    structured: logging.Handler = handler
    return structured


def configure(
    level: int = logging.INFO,
    *,
    human: bool | None = None,
    stream: TextIO | None = None,
    project: str | None = None,
) -> logging.Handler:
    """Put the one log handler on the root logger, so every library's records go through it.

    Human-readable lines on a terminal (or with `human=True`), else Cloud Logging's structured
    JSON (trace, spanId, trace_sampled, sourceLocation, labels for the job id and stage).
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_closet", False)]:
        root.removeHandler(old)
    target = stream or sys.stderr
    if human is None:
        human = target.isatty()
    handler = None if human else _structured_handler(stream, project)
    if handler is None:
        handler = _Stderr() if stream is None else logging.StreamHandler(stream)
        handler.setFormatter(HumanFormatter())
    handler._closet = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # Our own records at `level`; other libraries' only from WARNING up, unless asked for more.
    root.setLevel(max(level, logging.WARNING) if level > logging.DEBUG else level)
    logging.getLogger(LOGGER_NAME).setLevel(level)
    return handler


def log(level: int, message: str, **fields: Any) -> None:
    """One log line; `jobId` and `stage` become labels, other fields go to jsonPayload."""
    _emit(level, message, **fields)


def _emit(level: int, message: str, **fields: Any) -> None:
    labels = {key: str(fields.pop(key)) for key in LABELS if fields.get(key) is not None}
    extra = {"labels": labels, "json_fields": fields}
    # stacklevel 3: sourceLocation names whoever called `log` or a log-event helper below.
    logging.getLogger(LOGGER_NAME).log(level, message, extra=extra, stacklevel=3)


def stage_started(job_id: str, stage: str, attempt: int) -> None:
    _emit(logging.INFO, f"{stage} started", jobId=job_id, stage=stage, attempt=attempt)


def stage_finished(job_id: str, stage: str, ms: int, status: str) -> None:
    _emit(logging.INFO, f"{stage} {status} in {ms} ms", jobId=job_id, stage=stage, ms=ms)


def job_failed(job_id: str, stage: str, code: str, message: str) -> None:
    # Bad input is expected traffic, not an incident: INFO, no stack trace.
    _emit(logging.INFO, f"job failed: {code}", jobId=job_id, stage=stage, code=code, detail=message)


def stage_error(job_id: str, stage: str, error: BaseException, attempt: int) -> None:
    _emit(
        logging.WARNING,
        f"{stage} raised, will be retried: {error}",
        jobId=job_id,
        stage=stage,
        attempt=attempt,
        error=type(error).__name__,
    )


def message_skipped(job_id: str, stage: str, reason: str) -> None:
    _emit(logging.INFO, f"{stage} message acknowledged without work: {reason}", jobId=job_id)


@contextmanager
def timer() -> Iterator[list[int]]:
    """Yields a one-element list that holds the elapsed milliseconds after the block."""
    elapsed = [0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = round((time.perf_counter() - start) * 1000)

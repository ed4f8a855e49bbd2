"""Structured JSON logs in Cloud Logging's format, and stage timers."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

LOGGER_NAME = "closet"

# Cloud Logging reads `severity` and `message`; everything else lands in jsonPayload.
_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


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


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        trace = _trace.get()
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send the closet logger's records to stderr as one JSON object per line."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_closet", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(CloudLoggingFormatter())
        handler._closet = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def log(level: int, message: str, **fields: Any) -> None:
    logging.getLogger(LOGGER_NAME).log(level, message, extra={"fields": fields})


def stage_started(job_id: str, stage: str, attempt: int) -> None:
    log(logging.INFO, f"{stage} started", jobId=job_id, stage=stage, attempt=attempt)


def stage_finished(job_id: str, stage: str, ms: int, status: str) -> None:
    log(logging.INFO, f"{stage} {status} in {ms} ms", jobId=job_id, stage=stage, ms=ms)


def job_failed(job_id: str, stage: str, code: str, message: str) -> None:
    # Bad input is expected traffic, not an incident: INFO, no stack trace.
    log(logging.INFO, f"job failed: {code}", jobId=job_id, stage=stage, code=code, detail=message)


def stage_error(job_id: str, stage: str, error: BaseException, attempt: int) -> None:
    log(
        logging.WARNING,
        f"{stage} raised, will be retried: {error}",
        jobId=job_id,
        stage=stage,
        attempt=attempt,
        error=type(error).__name__,
    )


def message_skipped(job_id: str, stage: str, reason: str) -> None:
    log(logging.INFO, f"{stage} message acknowledged without work: {reason}", jobId=job_id)


@contextmanager
def timer() -> Iterator[list[int]]:
    """Yields a one-element list that holds the elapsed milliseconds after the block."""
    elapsed = [0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = round((time.perf_counter() - start) * 1000)

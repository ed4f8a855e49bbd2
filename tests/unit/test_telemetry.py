"""Logs: the request's trace, and the one handler on the root logger (JSON or human lines)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import flask
import pytest

from common import telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    ],
)
def test_trace_comes_from_either_header(headers):
    trace = telemetry.trace_from_headers(headers, "closet-prod")

    assert trace == "projects/closet-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736"


def test_no_trace_header_means_no_trace():
    assert telemetry.trace_from_headers({}, "closet-prod") is None


def test_trace_is_read_from_a_real_request_whatever_the_header_case():
    app = flask.Flask(__name__)
    header = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}

    with app.test_request_context("/", headers=header):
        trace = telemetry.trace_from_headers(flask.request.headers, "p")

    assert trace == "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    closet_level = logging.getLogger(telemetry.LOGGER_NAME).level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger(telemetry.LOGGER_NAME).setLevel(closet_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_functions_log_cloud_logging_json_with_trace_span_and_labels(restore_logging):
    stream = io.StringIO()
    telemetry.configure(logging.INFO, human=False, stream=stream, project="closet-prod")
    app = flask.Flask(__name__)
    headers = {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}

    with app.test_request_context("/", headers=headers):
        telemetry.stage_started("job-1", "segment", 2)

    [entry] = lines(stream)
    assert entry["severity"] == "INFO" and entry["message"] == "segment started"
    assert entry["logging.googleapis.com/trace"] == f"projects/closet-prod/traces/{TRACE_ID}"
    assert entry["logging.googleapis.com/spanId"] == SPAN_ID
    assert entry["logging.googleapis.com/trace_sampled"] is True
    labels = entry["logging.googleapis.com/labels"]
    assert isinstance(labels, dict)
    assert labels["jobId"] == "job-1" and labels["stage"] == "segment"
    assert entry["attempt"] == 2
    location = entry["logging.googleapis.com/sourceLocation"]
    assert isinstance(location, dict)
    assert (
        location["function"]
        == test_functions_log_cloud_logging_json_with_trace_span_and_labels.__name__
    )
    assert location["file"] == __file__


def test_other_libraries_log_through_the_same_handler(restore_logging):
    stream = io.StringIO()
    telemetry.configure(logging.INFO, human=False, stream=stream)

    logging.getLogger("tests.a_library").warning("retrying publish")
    logging.getLogger("tests.a_library").info("below the libraries' level: not written")

    [entry] = lines(stream)
    assert entry["message"] == "retrying publish" and entry["severity"] == "WARNING"


def test_the_trace_of_a_traced_block_needs_no_request(restore_logging):
    stream = io.StringIO()
    telemetry.configure(logging.INFO, human=False, stream=stream)

    with telemetry.traced(f"projects/p/traces/{TRACE_ID}"):
        telemetry.log(logging.WARNING, "inside", jobId="job-2")
    telemetry.log(logging.WARNING, "outside")

    inside, outside = lines(stream)
    assert inside["logging.googleapis.com/trace"] == f"projects/p/traces/{TRACE_ID}"
    assert outside["logging.googleapis.com/trace"] == ""


def test_a_person_reads_one_plain_line_per_record(restore_logging):
    stream = io.StringIO()
    telemetry.configure(logging.INFO, human=True, stream=stream)

    telemetry.stage_error("job-3", "expand", TimeoutError("slow"), 1)

    [line] = stream.getvalue().splitlines()
    assert "WARNING  expand raised, will be retried: slow" in line
    assert line.endswith("jobId=job-3  stage=expand  attempt=1  error=TimeoutError")
    assert not line.lstrip().startswith("{")


def test_configure_twice_keeps_one_handler(restore_logging):
    telemetry.configure(logging.INFO, human=True, stream=io.StringIO())
    telemetry.configure(logging.INFO, human=False, stream=io.StringIO())

    ours = [h for h in logging.getLogger().handlers if getattr(h, "_closet", False)]

    assert len(ours) == 1

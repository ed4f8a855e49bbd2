import json
import logging

import flask
import pytest

from common import telemetry


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Cloud-Trace-Context": "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    ],
)
def test_trace_comes_from_either_header(headers):
    trace = telemetry.trace_from_headers(headers, "closet-prod")

    assert trace == "projects/closet-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736"


def test_no_trace_header_means_no_trace():
    assert telemetry.trace_from_headers({}, "closet-prod") is None


def test_log_lines_are_cloud_logging_json_with_the_request_trace():
    formatter = telemetry.CloudLoggingFormatter()
    record = logging.LogRecord("closet", logging.WARNING, __file__, 1, "segment raised", (), None)
    record.fields = {"jobId": "job-1", "stage": "segment"}

    with telemetry.traced("projects/p/traces/abc"):
        inside = json.loads(formatter.format(record))
    outside = json.loads(formatter.format(record))

    assert inside["severity"] == "WARNING" and inside["message"] == "segment raised"
    assert inside["jobId"] == "job-1" and inside["stage"] == "segment"
    assert inside["logging.googleapis.com/trace"] == "projects/p/traces/abc"
    assert "logging.googleapis.com/trace" not in outside


def test_trace_is_read_from_a_real_request_whatever_the_header_case():
    app = flask.Flask(__name__)
    header = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}

    with app.test_request_context("/", headers=header):
        trace = telemetry.trace_from_headers(flask.request.headers, "p")

    assert trace == "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"

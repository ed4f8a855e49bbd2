"""`closet dev`'s plumbing that needs no emulator: fixed ports, and logs streamed with names."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from common.devstack import LogStreamer, PortsError, assign_ports, render

FUNCTIONS = ["ingest", "segment", "dead_letter"]


def test_a_base_port_numbers_the_emulators_then_the_functions_then_the_page():
    ports = assign_ports({"base": 9100, "segment": 9200}, FUNCTIONS)

    assert ports == {
        "pubsub": 9100,
        "firestore": 9101,
        "gcs": 9102,
        "auth": 9103,
        "ingest": 9104,
        "segment": 9200,
        "dead_letter": 9106,
        "web": 9107,
    }


def test_ports_may_be_named_one_by_one():
    assert assign_ports({"pubsub": 8085}, FUNCTIONS) == {"pubsub": 8085}


@pytest.mark.parametrize(
    ("requested", "says"),
    [
        ({"redis": 6379}, "no emulator or function called redis"),
        ({"pubsub": 8085, "ingest": 8085}, "port 8085 is given twice"),
        ({"base": 65534}, "leaves no room"),
    ],
)
def test_impossible_ports_are_refused_before_anything_starts(requested, says):
    with pytest.raises(PortsError, match=says):
        assign_ports(requested, FUNCTIONS)


def test_cloud_logging_lines_are_shown_as_severity_and_message():
    entry = {
        "message": "segment started",
        "severity": "INFO",
        "logging.googleapis.com/labels": {"jobId": "j-1", "stage": "segment"},
    }

    assert render(json.dumps(entry)) == "INFO     segment started  jobId=j-1"
    assert render("[gunicorn] Booting worker") == "[gunicorn] Booting worker"
    assert render("{not json") == "{not json"


def test_every_line_of_every_log_is_streamed_once_with_its_name(tmp_path: Path):
    console = io.StringIO()
    streamer = LogStreamer(console, ["pubsub", "ingest", "remove_background"])
    pubsub, ingest = tmp_path / "pubsub.log", tmp_path / "ingest.log"
    pubsub.write_text("[pubsub] started\n[pubsub] half a li")
    streamer.add("pubsub", pubsub)
    streamer.add("ingest", ingest)  # not written yet

    streamer.poll()
    with pubsub.open("a") as log:
        log.write("ne\n")
    ingest.write_text('{"message": "ingest started", "severity": "INFO"}\n')
    streamer.poll()
    streamer.poll()

    rows = [re.sub(r"^\d\d:\d\d:\d\d ", "", row) for row in console.getvalue().splitlines()]
    assert rows == [
        "pubsub            | [pubsub] started",
        "pubsub            | [pubsub] half a line",
        "ingest            | INFO     ingest started",
    ]
    assert "\x1b[" not in console.getvalue()  # no colours when the console is not a terminal

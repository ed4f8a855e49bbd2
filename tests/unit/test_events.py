"""Every golden event decodes to its expected result; the malformed ones say why."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import flask
import pytest
from cloudevents import exceptions as cloud_exceptions
from cloudevents.http import CloudEvent, from_http
from functions_framework import event_conversion

from common.events import Ignored, MalformedEvent, WarmUp, decode, delivery_attempt
from common.schemas import StageMessage, UploadEvent

EVENTS = Path(__file__).parents[1] / "data" / "events"
GOLDEN = sorted(
    p.name.removesuffix(".json") for p in EVENTS.glob("*.json") if ".expected" not in p.name
)


def load_golden(name: str) -> dict[str, Any]:
    golden: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return golden


def request_body(golden: dict[str, Any]) -> bytes:
    body = golden["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


def as_cloud_event(golden: dict[str, Any]) -> CloudEvent:
    """The CloudEvent functions-framework hands the function for this request."""
    app = flask.Flask("golden")
    with app.test_request_context(
        golden["path"], method="POST", headers=golden["headers"], data=request_body(golden)
    ):
        request = flask.request
        try:
            return from_http(request.headers, request.get_data())
        except (cloud_exceptions.MissingRequiredFields, cloud_exceptions.InvalidRequiredFields):
            # What the framework does for a raw Pub/Sub push (no ce-* headers).
            event: CloudEvent = event_conversion.background_event_to_cloud_event(request)
            return event


def raw_envelope(golden: dict[str, Any]) -> dict[str, Any] | None:
    body = golden["body"]
    return body if "ce-type" not in golden["headers"] and isinstance(body, dict) else None


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_event_decodes_to_its_expected_result(name: str) -> None:
    golden = load_golden(name)
    expected = json.loads((EVENTS / f"{name}.expected.json").read_text())
    event = as_cloud_event(golden)

    if expected["kind"] == "MalformedEvent":
        with pytest.raises(MalformedEvent) as raised:
            decode(event, envelope=raw_envelope(golden))
        assert expected["reason"] in raised.value.reason
        return
    decoded = decode(event, envelope=raw_envelope(golden))

    assert type(decoded).__name__ == expected["kind"]
    if isinstance(decoded, StageMessage | UploadEvent):
        assert decoded.to_wire() == expected["value"]
    elif isinstance(decoded, Ignored):
        assert expected["reason"] in decoded.reason
    else:
        assert isinstance(decoded, WarmUp)
        assert decoded.source == expected["value"]["source"]


def test_raw_push_arrives_as_message_published_without_delivery_attempt() -> None:
    # Why the service passes the raw body: the framework's conversion drops deliveryAttempt.
    golden = load_golden("pubsub-push-delivery-attempt")

    event = as_cloud_event(golden)

    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert "deliveryAttempt" not in event.data
    assert delivery_attempt(event) is None
    assert delivery_attempt(event, envelope=golden["body"]) == 3


def test_envelope_of_another_message_is_not_trusted_for_the_attempt() -> None:
    golden = load_golden("pubsub-push-delivery-attempt")
    event = as_cloud_event(golden)
    other = {**golden["body"], "message": {**golden["body"]["message"], "messageId": "other"}}

    decoded = decode(event, envelope=other)

    assert isinstance(decoded, StageMessage)
    assert decoded.attempt == 1


def _push(attributes: dict[str, str], data: bytes) -> CloudEvent:
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"},
        {"message": {"data": base64.b64encode(data).decode(), "attributes": attributes}},
    )


def test_numeric_generation_from_older_fake_gcs_server_is_accepted() -> None:
    resource = {"bucket": "closet-uploads", "name": "users/bob/a.png", "generation": 42}
    event = CloudEvent(
        {"type": "google.cloud.storage.object.v1.finalized", "source": "//storage/test"},
        resource,
    )

    decoded = decode(event)

    assert isinstance(decoded, UploadEvent)
    assert decoded.generation == "42"


def test_notification_without_payload_is_read_from_its_attributes() -> None:
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": "closet-uploads",
        "objectId": "users/bob/a.png",
        "objectGeneration": "7",
        "payloadFormat": "NONE",
    }

    decoded = decode(_push(attributes, b""))

    assert decoded == UploadEvent(bucket="closet-uploads", name="users/bob/a.png", generation="7")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (CloudEvent({"type": "com.example.other", "source": "//x"}, {}), "unexpected event type"),
        (
            CloudEvent(
                {"type": "google.cloud.storage.object.v1.finalized", "source": "//x"},
                {"bucket": "b", "name": "n"},
            ),
            "no valid generation",
        ),
        (
            CloudEvent(
                {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//x"},
                {"message": {"data": "%%%"}},
            ),
            "not base64",
        ),
        (
            CloudEvent(
                {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//x"},
                {"subscription": "s"},
            ),
            "is not a JSON object",
        ),
        (
            _push(
                {"eventType": "OBJECT_FINALIZE", "bucketId": "b", "payloadFormat": "JSON_API_V1"},
                b"[",
            ),
            "object resource is not JSON",
        ),
    ],
)
def test_malformed_events_raise_with_a_reason(event: CloudEvent, reason: str) -> None:
    with pytest.raises(MalformedEvent) as raised:
        decode(event)

    assert reason in raised.value.reason


def test_eventarc_storage_deleted_is_ignored() -> None:
    event = CloudEvent(
        {"type": "google.cloud.storage.object.v1.deleted", "source": "//storage/test"},
        {"bucket": "b", "name": "n", "generation": "1"},
    )

    decoded = decode(event)

    assert isinstance(decoded, Ignored)
    assert "deleted" in decoded.reason


def test_notification_without_payload_still_names_the_object() -> None:
    envelope = {
        "message": {
            "attributes": {
                "eventType": "OBJECT_FINALIZE",
                "bucketId": "closet-uploads",
                "objectId": "users/alice/photo.jpg",
                "objectGeneration": "1700000000000001",
                "payloadFormat": "NONE",
            },
            "messageId": "42",
            "publishTime": "2026-11-23T12:00:00Z",
        },
        "subscription": "projects/p/subscriptions/s",
    }
    event = CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/p/topics/closet-uploads",
            "id": "42",
        },
        envelope,
    )

    decoded = decode(event)

    assert isinstance(decoded, UploadEvent)
    assert (decoded.bucket, decoded.name, decoded.generation) == (
        "closet-uploads",
        "users/alice/photo.jpg",
        "1700000000000001",
    )

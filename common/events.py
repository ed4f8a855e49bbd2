"""Decode what arrives at a function: a warm-up, an upload, a stage message, or a reason to ack.

Formats accepted (see tests/data/events/ for one golden file of each):

- a Pub/Sub push, which functions-framework turns into a `messagePublished` CloudEvent whose
  data is `{"message": {"data", "attributes", "messageId", "publishTime"}}`; its message is
  either a `StageMessage` (JSON) or a Cloud Storage notification (attributes `eventType`,
  `bucketId`, `objectId`, `objectGeneration`, `payloadFormat`; data the object resource);
- the same envelope sent by Eventarc as a CloudEvent, with `subscription` kept in the data;
- an Eventarc `google.cloud.storage.object.v1.finalized` CloudEvent (data the object resource);
- a `closet.warmup` CloudEvent from Cloud Scheduler.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.abstract import CloudEvent
from pydantic import ValidationError

from common.errors import ClosetError
from common.schemas import StageMessage, UploadEvent

WARMUP_TYPE = "closet.warmup"
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED_TYPE = "google.cloud.storage.object.v1.finalized"
# Other Eventarc storage events: a trigger filtered on the wrong type, not worth a retry.
STORAGE_OTHER_TYPES = frozenset(
    {
        "google.cloud.storage.object.v1.deleted",
        "google.cloud.storage.object.v1.archived",
        "google.cloud.storage.object.v1.metadataUpdated",
    }
)
FINALIZE = "OBJECT_FINALIZE"
# Set by Pub/Sub on a message it moved to a dead-letter topic.
DEAD_LETTER_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"


class MalformedEvent(ClosetError):
    """The event can never be understood: acknowledge it with this reason, never retry it."""

    code = "malformed_event"

    @property
    def reason(self) -> str:
        return self.message


@dataclass(frozen=True)
class WarmUp:
    """A prewarming ping: touch the model, do no work."""

    source: str


@dataclass(frozen=True)
class Ignored:
    """A well-formed event that asks for no work (a deletion, a folder placeholder)."""

    reason: str


Decoded = WarmUp | UploadEvent | StageMessage | Ignored


def decode(event: CloudEvent, *, envelope: Mapping[str, Any] | None = None) -> Decoded:
    """What `event` asks for; raises MalformedEvent with a reason when it cannot be understood.

    `envelope` is the raw push body when there is one: functions-framework drops its
    `deliveryAttempt` while converting it to a CloudEvent.
    """
    kind = event["type"]
    if kind == WARMUP_TYPE:
        return WarmUp(source=str(event["source"]))
    if kind == PUBSUB_TYPE:
        return _from_pubsub(_json_object(event.get_data(), "event data"), envelope)
    if kind == STORAGE_FINALIZED_TYPE:
        return _upload(_json_object(event.get_data(), "event data"))
    if kind in STORAGE_OTHER_TYPES:
        return Ignored(f"storage event {kind} does not start a job")
    raise MalformedEvent(f"unexpected event type {kind!r}")


def delivery_attempt(event: CloudEvent, *, envelope: Mapping[str, Any] | None = None) -> int | None:
    """Which delivery of its message `event` is, when Pub/Sub says so."""
    if event["type"] != PUBSUB_TYPE:
        return None
    try:
        data = _json_object(event.get_data(), "event data")
        message = _json_object(data.get("message"), "message")
    except MalformedEvent:
        return None
    return _attempt(data, message, envelope)


def _from_pubsub(data: Mapping[str, Any], envelope: Mapping[str, Any] | None) -> Decoded:
    message = _json_object(data.get("message"), "the push envelope's message")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise MalformedEvent("the Pub/Sub message's attributes are not an object")
    if "eventType" in attributes and "bucketId" in attributes:
        # A notification with payload format NONE carries no data at all: the attributes
        # alone name the object.
        raw = message.get("data")
        return _from_notification(attributes, b"" if raw in (None, "") else _base64(raw))
    payload = _base64(message.get("data"))
    try:
        decoded = StageMessage.model_validate_json(payload)
    except ValidationError as exc:
        raise MalformedEvent(f"not a stage message: {_first_error(exc)}") from None
    attempt = _attempt(data, message, envelope)
    return decoded.model_copy(update={"attempt": attempt}) if attempt else decoded


def _from_notification(attributes: Mapping[str, Any], payload: bytes) -> Decoded:
    """A Cloud Storage notification; the attributes name the object even without a payload."""
    event_type = attributes["eventType"]
    if event_type != FINALIZE:
        return Ignored(f"storage notification {event_type} does not start a job")
    resource: Mapping[str, Any] = {}
    if attributes.get("payloadFormat") == "JSON_API_V1" and payload:
        resource = _json_object(payload, "the notification's object resource")
    return _upload(
        resource,
        bucket=attributes.get("bucketId"),
        name=attributes.get("objectId"),
        generation=attributes.get("objectGeneration"),
    )


def _upload(
    resource: Mapping[str, Any],
    *,
    bucket: Any = None,
    name: Any = None,
    generation: Any = None,
) -> UploadEvent | Ignored:
    bucket = bucket or resource.get("bucket")
    name = name or resource.get("name")
    # Cloud Storage sends the generation as a string; some fake-gcs-server versions as a number.
    generation = generation or resource.get("generation")
    if not isinstance(bucket, str) or not bucket:
        raise MalformedEvent("the storage event names no bucket")
    if not isinstance(name, str) or not name:
        raise MalformedEvent("the storage event names no object")
    if isinstance(generation, int) and not isinstance(generation, bool):
        generation = str(generation)
    if not isinstance(generation, str) or not generation.isdigit():
        raise MalformedEvent(f"the storage event for {name} has no valid generation")
    if name.endswith("/"):
        # Consoles and some tools create empty "folder" objects: nothing to process.
        return Ignored(f"{name} is a folder placeholder")
    metadata = resource.get("metadata")
    return UploadEvent(
        bucket=bucket,
        name=name,
        generation=generation,
        content_type=_optional_str(resource.get("contentType")),
        size=_optional_int(resource.get("size")),
        metadata=(
            {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
        ),
    )


def _attempt(
    data: Mapping[str, Any], message: Mapping[str, Any], envelope: Mapping[str, Any] | None
) -> int | None:
    """`deliveryAttempt` of the push (set only with a dead-letter policy), else the count a
    dead-lettered message carries."""
    candidates: list[Any] = [data.get("deliveryAttempt")]
    raw = envelope.get("message") if envelope else None
    # Trust the raw body only when it carries this very message.
    if isinstance(raw, dict) and raw.get("messageId") == message.get("messageId"):
        candidates.append(envelope.get("deliveryAttempt") if envelope else None)
    attributes = message.get("attributes")
    if isinstance(attributes, dict):
        candidates.append(attributes.get(DEAD_LETTER_COUNT))
    for value in candidates:
        attempt = _optional_int(value)
        if attempt is not None and attempt > 0:
            return attempt
    return None


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, bytes | str):
        try:
            value = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise MalformedEvent(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedEvent(f"{what} is not a JSON object")
    return value


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise MalformedEvent("the Pub/Sub message has no data")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEvent("the Pub/Sub message's data is not base64") from None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "message"
    return f"{where}: {error['msg']}"

"""CloudEvents delivered to a running function over HTTP, as Eventarc and Cloud Scheduler do."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

WARMUP = "closet.warmup"
PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def post_cloud_event(
    url: str,
    event_type: str,
    source: str,
    data: Mapping[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> int:
    """POST one CloudEvent in binary mode; the HTTP status (a refusal is a status, not a raise).

    A server that is not listening yet raises `OSError`, so a caller can wait for it.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(data or {}).encode(),
        headers={
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-type": event_type,
            "ce-source": source,
            "ce-id": uuid.uuid4().hex,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code

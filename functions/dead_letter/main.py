"""Cloud Run function `dead_letter`: fed by every dead-letter topic; the work is in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import DeadLetterService

# Built at import, so a warm instance reuses its clients.
service = DeadLetterService.create()


@functions_framework.cloud_event
def dead_letter(event: CloudEvent) -> None:
    service.handle(event)

"""Cloud Run function `caption`: the entry point only; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import StageService

# Built at import: the stage's backend loads once per instance, never inside a request.
service = StageService.create("caption")


@functions_framework.cloud_event
def caption(event: CloudEvent) -> None:
    service.handle(event)

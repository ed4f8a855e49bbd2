"""Cloud Run function `studio_prepare`: the entry point only; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import StageService

# Built at import: the stage's backend loads once per instance, never inside a request.
service = StageService.create("studio_prepare")


@functions_framework.cloud_event
def studio_prepare(event: CloudEvent) -> None:
    service.handle(event)

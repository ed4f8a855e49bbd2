"""Cloud Run function `compose`: the entry point only; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import StageService

# Built at import: the stage's backend loads once per instance, never inside a request.
service = StageService.create("compose")


@functions_framework.cloud_event
def compose(event: CloudEvent) -> None:
    service.handle(event)

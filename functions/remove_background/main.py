"""Cloud Run function `remove_background`: the entry point only; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import StageService

# Built at import; its models load in the serving worker, never inside a request.
service = StageService.create("remove_background")


@functions_framework.cloud_event
def remove_background(event: CloudEvent) -> None:
    service.handle(event)

"""Cloud Run function `finalize`: the entry point only; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import StageService

# Built at import; its models load in the serving worker, never inside a request.
service = StageService.create("finalize")


@functions_framework.cloud_event
def finalize(event: CloudEvent) -> None:
    service.handle(event)

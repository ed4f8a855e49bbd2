"""Cloud Run function `tryon_prepare`: the entry point only; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import StageService

# Built at import: reads the try-on backend's needs once per instance.
service = StageService.create("tryon_prepare")


@functions_framework.cloud_event
def tryon_prepare(event: CloudEvent) -> None:
    service.handle(event)

"""Cloud Run function `tryon_generate`: the entry point only; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import StageService

# Built at import: the try-on backend's client is built once per instance.
service = StageService.create("tryon_generate")


@functions_framework.cloud_event
def tryon_generate(event: CloudEvent) -> None:
    service.handle(event)

"""Cloud Run function `ingest`: the uploads trigger; the work lives in handler.py."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import IngestService

# Built at import, so a warm instance reuses its clients.
service = IngestService.create()


@functions_framework.cloud_event
def ingest(event: CloudEvent) -> None:
    service.handle(event)

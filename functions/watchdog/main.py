"""Cloud Run function `watchdog`: Cloud Scheduler's sweep for stuck jobs (common/watchdog.py)."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from common.service import WatchdogService

# Built at import, so a warm instance reuses its clients.
service = WatchdogService.create()


@functions_framework.cloud_event
def watchdog(event: CloudEvent) -> None:
    service.handle(event)

"""The cloud adapters, wired once per process (at module scope, so warm instances reuse them).

Locally the client libraries find the emulators themselves through `FIRESTORE_EMULATOR_HOST`,
`PUBSUB_EMULATOR_HOST` and `STORAGE_EMULATOR_HOST`, and then use anonymous credentials: no
real credentials are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.cloud import firestore, storage  # type: ignore[attr-defined]

from common.adapters.firestore import FirestoreJobStore
from common.adapters.gcs import GcsBlobStore
from common.adapters.pubsub import PubSubBus, publisher
from common.config import Settings
from common.ports import BlobStore, Bus, JobStore


@dataclass(frozen=True)
class CloudPorts:
    jobs: JobStore
    bus: Bus
    blobs: BlobStore


def cloud_ports(settings: Settings) -> CloudPorts:
    """One Firestore, one Pub/Sub publisher and one Cloud Storage client for `settings.project`."""
    return CloudPorts(
        jobs=firestore_jobs(settings),
        bus=PubSubBus(publisher(), settings.project),
        blobs=GcsBlobStore(storage.Client(project=settings.project)),
    )


def firestore_jobs(settings: Settings) -> JobStore:
    """The job documents alone (the api reads them and publishes nothing)."""
    return FirestoreJobStore(firestore.Client(project=settings.project))

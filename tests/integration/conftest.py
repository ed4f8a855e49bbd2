"""The real emulators, started once per session on free ports and stopped at the end.

Under `CI=true` they must run: a missing gcloud, Java or fake-gcs-server fails the session.
Elsewhere the integration tests are skipped, with the reason in the summary.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import pytest
from google.cloud import firestore, pubsub_v1, storage  # type: ignore[attr-defined]

from common.config import Settings
from common.devstack import DevStack
from common.emulators import (
    AuthEmulator,
    Emulator,
    EmulatorUnavailable,
    FirestoreEmulator,
    GcsEmulator,
    PubSubEmulator,
    start_all,
    stop_all,
)

PROJECT = "closet-test"
UPLOADS_BUCKET = "closet-test-uploads"
# fake-gcs-server publishes OBJECT_FINALIZE of the uploads bucket here, as a GCS notification.
UPLOAD_EVENTS_TOPIC = "closet-test-uploads-finalized"
E = TypeVar("E", bound=Emulator)


def emulators_unavailable(reason: str) -> NoReturn:
    """The one place that decides: fail under CI (they must run there), skip loudly elsewhere."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true but the emulators cannot run: {reason}", pytrace=False)
    pytest.skip(f"EMULATOR TESTS SKIPPED (set CI=true to fail instead): {reason}")


@contextlib.contextmanager
def running_stack(project: str, function_env: dict[str, str]) -> Iterator[DevStack]:
    """The whole topology (`closet dev`) for a test module; the environment is restored after."""
    saved = dict(os.environ)
    stack = DevStack(
        Settings.from_env({}, project=project),
        function_env={"GOOGLE_CLOUD_PROJECT": project, **function_env},
    )
    try:
        stack.start()
    except EmulatorUnavailable as exc:
        emulators_unavailable(str(exc))
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class Emulators:
    pubsub: PubSubEmulator
    firestore: FirestoreEmulator
    gcs: GcsEmulator

    @property
    def env(self) -> dict[str, str]:
        return {**self.pubsub.env, **self.firestore.env, **self.gcs.env}


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    pubsub = PubSubEmulator(project=PROJECT)
    started = Emulators(
        pubsub=pubsub,
        firestore=FirestoreEmulator(),
        gcs=GcsEmulator(
            pubsub_host=pubsub.address,
            pubsub_project=PROJECT,
            pubsub_topic=UPLOAD_EVENTS_TOPIC,
            event_bucket=UPLOADS_BUCKET,
        ),
    )
    every = [started.pubsub, started.firestore, started.gcs]
    try:
        start_all(every)
    except EmulatorUnavailable as exc:
        emulators_unavailable(str(exc))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in started.env.items():
                patch.setenv(name, value)
            yield started
    finally:
        stop_all(every)


@pytest.fixture(scope="session")
def firestore_client(emulators: Emulators) -> Any:
    return firestore.Client(project=PROJECT)


@pytest.fixture(scope="session")
def publisher(emulators: Emulators) -> Any:
    return pubsub_v1.PublisherClient()


@pytest.fixture(scope="session")
def subscriber(emulators: Emulators) -> Iterator[Any]:
    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


@pytest.fixture(scope="session")
def storage_client(emulators: Emulators) -> Any:
    return storage.Client(project=PROJECT)


@pytest.fixture(scope="session")
def upload_events_topic(publisher: Any) -> str:
    """The topic fake-gcs-server publishes to: it must exist before the first upload."""
    topic: str = publisher.topic_path(PROJECT, UPLOAD_EVENTS_TOPIC)
    publisher.create_topic(name=topic)
    return topic


@contextlib.contextmanager
def started(emulator: E) -> Iterator[E]:
    """One emulator, running for the block (or the tests skipped or failed as above)."""
    try:
        emulator.start()
    except EmulatorUnavailable as exc:
        emulators_unavailable(str(exc))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def auth_emulator() -> Iterator[AuthEmulator]:
    """The Firebase Auth emulator (firebase-tools): real, unsigned ID tokens of new users."""
    with started(AuthEmulator(project=PROJECT)) as emulator:
        yield emulator

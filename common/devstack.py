"""The local topology: emulators, one functions-framework process per function, the plumbing.

`closet dev` and the integration tests both run this, so what the tests prove is what a
developer gets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from common.config import Settings
from common.emulators import (
    HOST,
    EmulatorError,
    FirestoreEmulator,
    GcsEmulator,
    PubSubEmulator,
    free_port,
    start_all,
    stop_all,
)
from common.topology import FunctionSpec, Topology, load

REPO = Path(__file__).resolve().parent.parent


@dataclass
class FunctionProcess:
    """One Cloud Run function served by functions-framework on its own port."""

    spec: FunctionSpec
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def launch(self) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix=f"closet-fn-{self.spec.name}-", suffix=".log"
        )
        source = REPO / "functions" / self.spec.name / "main.py"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "functions_framework",
                f"--target={self.spec.name}",
                f"--source={source}",
                "--signature-type=cloudevent",
                f"--host={HOST}",
                f"--port={self.port}",
            ],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise EmulatorError(f"function {self.spec.name} exited:\n{self.output()}")
            try:
                # Any HTTP answer (a GET is refused with 4xx) means the app is serving.
                urllib.request.urlopen(self.url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise EmulatorError(f"function {self.spec.name} did not start:\n{self.output()}")

    def interrupt(self) -> None:
        """Ask gunicorn's master for a quick shutdown (SIGTERM would wait 30 s for workers).

        Signalling the worker instead would only make the master start a new one.
        """
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Wait for the interrupted process group to end; kill whatever is left."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)
        if self.log is not None:
            self.log.close()


@dataclass
class DevStack:
    """Everything `closet dev` runs; `start()` and `stop()` are each safe to call once."""

    settings: Settings
    topology: Topology = field(default_factory=load)
    function_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for the function processes (backends, test endpoints)."""
    startup_timeout_s: float = 120.0

    pubsub: PubSubEmulator | None = None
    firestore: FirestoreEmulator | None = None
    gcs: GcsEmulator | None = None
    functions: dict[str, FunctionProcess] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return self.settings.project

    @property
    def env(self) -> dict[str, str]:
        """What points client libraries at this stack."""
        env = {"GOOGLE_CLOUD_PROJECT": self.project}
        for emulator in (self.pubsub, self.firestore, self.gcs):
            if emulator is not None:
                env |= emulator.env
        return env

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.pubsub = PubSubEmulator(project=self.project)
        self.firestore = FirestoreEmulator()
        start_all([self.pubsub, self.firestore])
        # Clients in this process (topology, tests, `closet submit`) find the emulators here.
        os.environ.update(self.env)
        self._create_topics()
        uploads = self.topology.function("ingest").topic
        self.gcs = GcsEmulator(
            pubsub_host=self.pubsub.address,
            pubsub_project=self.project,
            pubsub_topic=uploads,
            event_bucket=self.settings.uploads_bucket,
            event_prefix=self.topology.uploads_prefix,
        ).start()
        os.environ.update(self.env)
        self._create_buckets()
        env = {**os.environ, **self.env, **self.function_env, "PYTHONUNBUFFERED": "1"}
        for spec in self.topology.all_functions:
            self.functions[spec.name] = FunctionProcess(spec, free_port(), env)
        for function in self.functions.values():
            function.launch()
        for function in self.functions.values():
            function.wait_until_ready(self.startup_timeout_s)
        self._create_subscriptions()

    def stop(self) -> None:
        for function in self.functions.values():
            function.interrupt()
        for function in self.functions.values():
            function.stop()
        stop_all([e for e in (self.gcs, self.pubsub, self.firestore) if e is not None])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self) -> dict[str, Any]:
        """The endpoints, as `closet dev --state` writes them."""
        return {
            "project": self.project,
            "buckets": {
                "uploads": self.settings.uploads_bucket,
                "work": self.settings.work_bucket,
                "results": self.settings.results_bucket,
            },
            "env": self.env,
            "functions": {name: f.url for name, f in self.functions.items()},
        }

    def _create_topics(self) -> None:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import pubsub_v1  # type: ignore[attr-defined,import-untyped,unused-ignore]

        publisher = pubsub_v1.PublisherClient()
        for spec in self.topology.all_functions:
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(name=publisher.topic_path(self.project, spec.topic))

    def _create_buckets(self) -> None:
        from google.api_core.exceptions import Conflict
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

        client = storage.Client(
            project=self.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        )
        for name in (
            self.settings.uploads_bucket,
            self.settings.work_bucket,
            self.settings.results_bucket,
        ):
            with contextlib.suppress(Conflict):
                client.create_bucket(name)

    def _create_subscriptions(self) -> None:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud import pubsub_v1  # type: ignore[attr-defined,import-untyped,unused-ignore]
        from google.protobuf import duration_pb2  # type: ignore[import-untyped]

        topology = self.topology
        subscriber = pubsub_v1.SubscriberClient()
        dead_letter_topic = pubsub_v1.PublisherClient.topic_path(
            self.project, topology.dead_letter.topic
        )
        retry = pubsub_v1.types.RetryPolicy(
            minimum_backoff=duration_pb2.Duration(seconds=topology.minimum_backoff_s),
            maximum_backoff=duration_pb2.Duration(seconds=topology.maximum_backoff_s),
        )
        for spec in topology.all_functions:
            request: dict[str, Any] = {
                "name": subscriber.subscription_path(self.project, spec.subscription),
                "topic": pubsub_v1.PublisherClient.topic_path(self.project, spec.topic),
                "push_config": {"push_endpoint": self.functions[spec.name].url},
                "ack_deadline_seconds": spec.ack_deadline_s,
                "retry_policy": retry,
            }
            if spec is not topology.dead_letter:
                request["dead_letter_policy"] = {
                    "dead_letter_topic": dead_letter_topic,
                    "max_delivery_attempts": topology.max_delivery_attempts,
                }
            with contextlib.suppress(AlreadyExists):
                subscriber.create_subscription(request=request)
        subscriber.close()

"""What each Cloud Run function does per event; built once per instance, at import time.

A stage's models load in the process that serves it: functions-framework imports the entry
point in gunicorn's master and then forks the worker, and ONNX Runtime's thread pool (like any
native thread) does not survive a fork; a model loaded at import ran on one thread. So the
worker loads them as it is forked, before it accepts a connection: no request loads a model,
and the first warm-up or request waits in the listen queue until they are in. (Cloud Run's
default TCP startup probe passes once the master listens, just before the worker loads.)
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import flask
from cloudevents.abstract import CloudEvent

from common import telemetry
from common.backends.lazy import Backends, Warm
from common.config import Settings, get_settings
from common.events import WARMUP_TYPE, Ignored, MalformedEvent, WarmUp, decode, delivery_attempt
from common.jobs import first_message, job_id_for, start_job
from common.pipelines import build_stage as build_handler
from common.pipelines import pipeline_for_upload, warmer
from common.ports import BlobStore, Bus, JobStore
from common.runtime import Delivery, Stage, dead_letter, run_stage
from common.schemas import StageMessage, UploadEvent
from common.stage import StageContext
from common.topology import load as load_topology
from common.watchdog import Watchdog

LEASE_FACTOR = 1.2
WORKER_BOOT_ERROR = 3
"""The exit status by which a gunicorn worker tells its master it could not boot (it halts)."""


@dataclass(frozen=True)
class Ports:
    jobs: JobStore
    bus: Bus
    blobs: BlobStore


PortsFactory = Callable[[Settings], Ports]


def cloud_ports(settings: Settings) -> Ports:
    """Firestore, Pub/Sub and Cloud Storage adapters from `common.cloud`."""
    # Imported by name and late: only a deployed function needs the Google clients.
    made: Any = importlib.import_module("common.cloud").cloud_ports(settings)
    return Ports(jobs=made.jobs, bus=made.bus, blobs=made.blobs)


ports_factory: PortsFactory = cloud_ports
"""What `*.create()` uses when given no ports; tests swap it before importing an entry point."""


def build_stage(name: str, settings: Settings, ports: Ports) -> tuple[Stage, Warm]:
    """The stage called `name` with its model loaded now, and how to touch that model."""
    backends = Backends(settings)
    warm = warmer(name, backends)
    context = StageContext(settings, ports.blobs, ports.jobs, backends)
    return build_handler(name, context), warm


class StageLoader:
    """The stage called `name` with its models: built once per process, in the serving one.

    A gunicorn worker builds it as it is forked from the master that imported the entry point;
    any other process (the Flask debug server, tests, an image build) on first use.
    """

    def __init__(self, name: str, settings: Settings, ports: Ports) -> None:
        self.name = name
        self.settings = settings
        self.ports = ports
        self._lock = threading.Lock()
        self._built: tuple[Stage, Warm] | None = None
        self._built_in = 0
        self._imported_in = os.getpid()
        _LOADERS.add(self)

    def get(self) -> tuple[Stage, Warm]:
        """This process's stage and warmer, built now if this process has none yet."""
        built = self._built
        if built is None or self._built_in != os.getpid():
            with self._lock:
                if self._built is None or self._built_in != os.getpid():
                    self._built = self._build()
                    self._built_in = os.getpid()
                built = self._built
        return built

    def _build(self) -> tuple[Stage, Warm]:
        started, threads_before = time.perf_counter(), native_threads()
        built = build_stage(self.name, self.settings, self.ports)
        ms = round((time.perf_counter() - started) * 1000)
        # The threads the models started (ONNX Runtime's intra-op pool): they are this process's.
        started_threads = native_threads() - threads_before
        message = (
            f"{self.name} loaded its models in {ms} ms (pid {os.getpid()}, "
            f"{started_threads} threads started)"
        )
        telemetry.log(
            logging.INFO,
            message,
            function=self.name,
            pid=os.getpid(),
            ms=ms,
            threads_started=started_threads,
        )
        return built

    def after_fork(self) -> None:
        """In a child process: drop the parent's lock; in a gunicorn worker, load the models now."""
        self._lock = threading.Lock()  # another thread of the parent may have held it
        worker = os.getppid() == self._imported_in and os.environ.get(
            "SERVER_SOFTWARE", ""
        ).startswith("gunicorn/")  # gunicorn's master announces itself so
        if not worker:
            return
        try:
            self.get()
        except Exception as exc:  # a model that cannot load must stop the instance at start
            telemetry.log(
                logging.CRITICAL,
                f"{self.name} could not load its models: {exc}",
                function=self.name,
                error=type(exc).__name__,
            )
            logging.shutdown()
            # An exception here would only be printed; this status halts gunicorn's master.
            os._exit(WORKER_BOOT_ERROR)


def native_threads() -> int:
    """The threads of this process, native ones included (0 where /proc cannot tell)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


_LOADERS: weakref.WeakSet[StageLoader] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for loader in list(_LOADERS):
        loader.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def preload(function: str) -> None:
    """Import `function`'s entry point and load its models here: an image's build step."""
    service = importlib.import_module(f"functions.{function}.main").service
    if isinstance(service, StageService):
        service.load()


def _resolve(settings: Settings | None, ports: Ports | None) -> tuple[Settings, Ports]:
    telemetry.configure()
    settings = settings or get_settings()
    return settings, ports or ports_factory(settings)


def _request_body() -> Mapping[str, Any] | None:
    """The raw push body: functions-framework drops its `deliveryAttempt` when converting."""
    if not flask.has_request_context():
        return None
    body = flask.request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _request_trace(project: str) -> str | None:
    if not flask.has_request_context():
        return None
    return telemetry.trace_from_headers(flask.request.headers, project)


def _acknowledged(function: str, event: CloudEvent, reason: str, level: int) -> Delivery:
    telemetry.log(
        level,
        f"{function} acknowledged an event without work: {reason}",
        function=function,
        eventId=event["id"],
        eventType=event["type"],
    )
    return Delivery.IGNORED


class StageService:
    """One pipeline stage behind a Pub/Sub push subscription."""

    def __init__(self, loader: StageLoader) -> None:
        self.loader = loader
        self.name = loader.name
        self.settings = loader.settings
        self.ports = loader.ports

    @classmethod
    def create(
        cls, name: str, settings: Settings | None = None, ports: Ports | None = None
    ) -> Self:
        """Settings and clients now; the models in the process that serves (see the module)."""
        settings, ports = _resolve(settings, ports)
        return cls(StageLoader(name, settings, ports))

    @property
    def stage(self) -> Stage:
        return self.loader.get()[0]

    def load(self) -> None:
        """Load the stage's models in this process now, if it has not."""
        self.loader.get()

    def warm(self) -> None:
        self.loader.get()[1]()

    def handle(self, event: CloudEvent) -> Delivery:
        """Settle one event; raises (the framework answers 5xx) only for transient errors."""
        with telemetry.traced(_request_trace(self.settings.project)):
            return self._settle(event)

    def _settle(self, event: CloudEvent) -> Delivery:
        name = self.name
        envelope = _request_body()
        try:
            decoded = decode(event, envelope=envelope)
        except MalformedEvent as exc:
            return _acknowledged(name, event, exc.reason, logging.WARNING)
        if isinstance(decoded, WarmUp):
            self.warm()
            return _acknowledged(name, event, f"warm-up from {decoded.source}", logging.DEBUG)
        if isinstance(decoded, Ignored):
            return _acknowledged(name, event, decoded.reason, logging.INFO)
        if isinstance(decoded, UploadEvent):
            return self.on_upload(event, decoded, delivery_attempt(event, envelope=envelope))
        if decoded.stage != name:
            # A miswired subscription: retrying would never help, and the job's own message
            # is still on the right topic.
            reason = f"message for {decoded.stage} (job {decoded.job_id})"
            return _acknowledged(name, event, reason, logging.WARNING)
        return self._run(decoded)

    def _run(self, message: StageMessage) -> Delivery:
        topology = load_topology()
        spec = topology.function(self.name)
        return run_stage(
            self.stage,
            message,
            self.ports.jobs,
            self.ports.bus,
            # A little longer than the time Pub/Sub waits for an answer: a copy redelivered
            # while the first still works finds the step held.
            lease_s=self.settings.lease_s or spec.ack_deadline_s * LEASE_FACTOR,
            max_attempts=topology.max_delivery_attempts,
        )

    def on_upload(self, event: CloudEvent, upload: UploadEvent, attempt: int | None) -> Delivery:
        return _acknowledged(self.name, event, "uploads start jobs at ingest", logging.WARNING)


class IngestService(StageService):
    """The uploads trigger: it creates the job of whichever pipeline the upload's path starts.

    A closet upload is ingest's own delivery, so no ingest message is sent; a job of another
    pipeline gets its first message published to that pipeline's first stage.
    """

    @classmethod
    def create(
        cls, name: str = "ingest", settings: Settings | None = None, ports: Ports | None = None
    ) -> Self:
        return super().create(name, settings, ports)

    def on_upload(self, event: CloudEvent, upload: UploadEvent, attempt: int | None) -> Delivery:
        if upload.bucket != self.settings.uploads_bucket:
            # Outputs live in other buckets; a notification from them must never start a job.
            reason = f"{upload.bucket} is not the uploads bucket"
            return _acknowledged(self.name, event, reason, logging.WARNING)
        # A redelivered upload finds its job and runs ingest again: run_stage skips finished work.
        job, _ = start_job(upload, self.ports.jobs, self.settings)
        message = first_message(job)
        if attempt:
            message = message.model_copy(update={"attempt": attempt})
        if message.stage == self.name:
            return self._run(message)
        if job.status.terminal or message.stage in job.stages:
            reason = f"{job.kind} job {job.id} already began at {message.stage}"
            return _acknowledged(self.name, event, reason, logging.INFO)
        # Published on every delivery until the first stage begins: a lost publish is redone,
        # and a duplicate is settled by the runtime's idempotency.
        self.ports.bus.publish(message)
        return Delivery.DONE


class WatchdogService:
    """Cloud Scheduler's sweep for stuck jobs: any event but a warm-up triggers one sweep."""

    name = "watchdog"

    def __init__(self, watchdog: Watchdog, project: str = "") -> None:
        self.watchdog = watchdog
        self.project = project

    @classmethod
    def create(
        cls, settings: Settings | None = None, ports: Ports | None = None
    ) -> WatchdogService:
        settings, ports = _resolve(settings, ports)
        watchdog = Watchdog(ports.jobs, ports.bus, load_topology(), settings.stuck_after_s)
        return cls(watchdog, settings.project)

    def handle(self, event: CloudEvent) -> Delivery:
        with telemetry.traced(_request_trace(self.project)):
            if event["type"] == WARMUP_TYPE:
                return _acknowledged(self.name, event, "warm-up", logging.DEBUG)
            self.watchdog.sweep()
            return Delivery.DONE


class DeadLetterService:
    """Messages Pub/Sub gave up on: each one's job fails, naming the stage and the last error."""

    name = "dead_letter"

    def __init__(self, ports: Ports, project: str = "") -> None:
        self.ports = ports
        self.project = project

    @classmethod
    def create(
        cls, settings: Settings | None = None, ports: Ports | None = None
    ) -> DeadLetterService:
        settings, ports = _resolve(settings, ports)
        return cls(ports, settings.project)

    def handle(self, event: CloudEvent) -> Delivery:
        with telemetry.traced(_request_trace(self.project)):
            return self._settle(event)

    def _settle(self, event: CloudEvent) -> Delivery:
        try:
            decoded = decode(event, envelope=_request_body())
        except MalformedEvent as exc:
            return _acknowledged(self.name, event, exc.reason, logging.WARNING)
        if isinstance(decoded, WarmUp):
            return _acknowledged(self.name, event, "warm-up", logging.DEBUG)
        if isinstance(decoded, Ignored):
            return _acknowledged(self.name, event, decoded.reason, logging.INFO)
        if isinstance(decoded, UploadEvent):
            # The uploads subscription dead-letters too: its job is the one ingest would run.
            first = pipeline_for_upload(decoded.name).first
            decoded = StageMessage(job_id=job_id_for(decoded), stage=first)
        dead_letter(self.ports.jobs, decoded)
        return Delivery.FAILED

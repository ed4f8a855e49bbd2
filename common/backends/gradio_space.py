"""A Gradio app (a Hugging Face Space, or any URL) through gradio_client: one connection per
process, reconnected after a transient failure, its failures mapped to the pipeline's errors.

Every backend that calls a Space (background removal, try-on) goes through `GradioSpace`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from common.errors import BackendUnavailable, ClosetError, TransientError

# Gradio's event stream sends a heartbeat this often while a prediction runs.
_HEARTBEAT_S = 15.0
# Words in a Space's error that mean "later", not "never" (ZeroGPU quotas, busy queues).
_TRANSIENT_WORDS = ("quota", "too many requests", "queue is full", "try again", "timed out")
# huggingface_hub, which resolves a Space id to its URL, uses its own httpx fork (httpx2), and
# older releases used requests: their network errors are recognised by name, not imported.
_FOREIGN_NETWORK_ERRORS = frozenset(
    {("httpx2", "TransportError"), ("requests", "ConnectionError"), ("requests", "Timeout")}
)
# How often a caller that follows a prediction's queue position looks at it.
_STATUS_POLL_S = 0.5

StatusCallback = Callable[[Any], None]
"""Called with gradio_client's `StatusUpdate` whenever the prediction's state changes."""


class GradioSpace:
    def __init__(self, src: str, token: str | None, timeout_s: float) -> None:
        self.src = src
        self._token = token
        self._timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()
        self.files = Path(tempfile.mkdtemp(prefix="closet-space-"))
        """Where inputs are written and the client downloads outputs."""

    def predict(self, *args: Any, api_name: str, on_status: StatusCallback | None = None) -> Any:
        """Run one prediction; its failures raise as TransientError or a PermanentError."""
        client = self._connected()
        api = api_name if api_name.startswith("/") else f"/{api_name}"
        try:
            job = client.submit(*args, api_name=api)
            try:
                if on_status is not None:
                    _follow(job, on_status, self._timeout_s)
                return job.result(timeout=self._timeout_s)
            except concurrent.futures.TimeoutError:
                job.cancel()
                raise
        except Exception as exc:
            error = map_error(exc)
            if error is None:
                raise
            if error.retryable:
                # The Space may have restarted with new endpoints: reconnect next time.
                self._forget(client)
            raise error from exc

    def warmup(self) -> None:
        """Wake the Space (a sleeping one starts on its first request) without a prediction."""
        with self._lock:
            fresh = self._client is None
        client = self._connected()
        if fresh:
            return  # connecting just fetched its config: that was the ping
        url = urllib.parse.urljoin(client.src, "config")
        try:
            response = httpx.get(url, headers=client.headers, timeout=self._timeout_s)
        except httpx.TransportError as exc:
            raise TransientError(f"Space {self.src} unreachable: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"Space {self.src} answered {response.status_code}")

    def outputs(self, result: Any) -> list[bytes]:
        """The bytes of every file the prediction returned; the downloads are deleted."""
        found: list[bytes] = []
        for path in _output_paths(result):
            try:
                found.append(Path(path).read_bytes())
            except OSError:
                continue
            finally:
                _discard(path, self.files)
        return found

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        shutil.rmtree(self.files, ignore_errors=True)

    def _connected(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        # gradio_client starts a telemetry thread unless this variable says "False", whatever
        # `analytics_enabled` says; an operator's explicit choice still wins.
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        from gradio_client import Client

        # The result arrives on an event stream that is silent between heartbeats: a shorter
        # read time-out would cut a long prediction. job.result() bounds the whole call.
        read_timeout = max(self._timeout_s, _HEARTBEAT_S * 2)
        try:
            return Client(
                self.src,
                token=self._token,
                verbose=False,
                analytics_enabled=False,
                download_files=str(self.files),
                httpx_kwargs={"timeout": httpx.Timeout(self._timeout_s, read=read_timeout)},
            )
        except Exception as exc:
            error = map_error(exc, connecting=True)
            if error is None:
                raise
            raise error from exc

    def _forget(self, client: Any) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()


def _follow(job: Any, on_status: StatusCallback, timeout_s: float) -> None:
    """Report the job's state (queued with a position, processing) until it is done."""
    deadline = time.monotonic() + timeout_s
    last: tuple[Any, ...] | None = None
    while not job.done() and time.monotonic() < deadline:
        status = job.status()
        seen = (status.code, status.rank, status.queue_size)
        if seen != last:
            last = seen
            on_status(status)
        time.sleep(_STATUS_POLL_S)


def _discard(path: Path, root: Path) -> None:
    """Delete a downloaded output and the per-file folder the client made for it."""
    if not path.is_relative_to(root):
        return
    path.unlink(missing_ok=True)
    if path.parent != root:
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def _output_paths(result: Any) -> Iterator[Path]:
    """Every file the client returned: a path, a FileData dict, or tuples/lists of them."""
    if isinstance(result, str | os.PathLike):
        yield Path(result)
    elif isinstance(result, dict):
        for key in ("path", "image", "name"):
            if key in result:
                yield from _output_paths(result[key])
                return
    elif isinstance(result, tuple | list):
        for item in result:
            yield from _output_paths(item)


def map_error(exc: BaseException, *, connecting: bool = False) -> ClosetError | None:
    """The pipeline's error for a gradio_client failure, or None when it is not one we know."""
    from gradio_client.exceptions import AppError, AuthenticationError
    from gradio_client.utils import InvalidAPIEndpointError, QueueError, TooManyRequestsError

    message = str(exc) or type(exc).__name__
    if isinstance(exc, concurrent.futures.TimeoutError | httpx.TimeoutException):
        return TransientError(f"the Space timed out: {message}")
    if _is_network_error(exc):
        return TransientError(f"the Space is unreachable: {message}")
    if isinstance(exc, TooManyRequestsError | QueueError):
        return TransientError(f"the Space is busy: {message}")
    if isinstance(exc, AuthenticationError):
        return BackendUnavailable(f"the Space refused our credentials: {message}")
    if isinstance(exc, AppError):
        if any(word in message.lower() for word in _TRANSIENT_WORDS):
            return TransientError(f"the Space is busy: {message}")
        return BackendUnavailable(f"the Space failed on this image: {message}")
    if isinstance(exc, InvalidAPIEndpointError):
        return BackendUnavailable(f"the Space has no such API: {message}")
    # httpx and huggingface_hub HTTP errors both carry the response.
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        if status == 429 or status >= 500:
            return TransientError(f"the Space answered {status}: {message}")
        return BackendUnavailable(f"the Space answered {status}: {message}")
    if isinstance(exc, ValueError):
        if "api_name" in message or "fn_index" in message:
            return BackendUnavailable(f"the Space has no such API: {message}")
        if "invalid state" in message:
            return BackendUnavailable(f"the Space cannot run: {message}")
        if connecting:
            # "Could not fetch config/api info": what a Space says while it wakes up.
            return TransientError(f"the Space is not ready: {message}")
    return None


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return True
    return any(
        (cls.__module__.partition(".")[0], cls.__name__) in _FOREIGN_NETWORK_ERRORS
        for cls in type(exc).__mro__
    )

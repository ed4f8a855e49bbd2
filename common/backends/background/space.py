"""A Hugging Face Space (or any Gradio app) serving a rembg-style API: image in, RGBA out."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import httpx
from PIL import Image

from common import imaging
from common.backends.background.base import BackgroundBackend
from common.config import Settings
from common.errors import BackendUnavailable, ClosetError, ConfigurationError, TransientError

# Gradio's event stream sends a heartbeat this often while a prediction runs.
_HEARTBEAT_S = 15.0
# Words in a Space's error that mean "later", not "never" (ZeroGPU quotas, busy queues).
_TRANSIENT_WORDS = ("quota", "too many requests", "queue is full", "try again", "timed out")
# huggingface_hub, which resolves a Space id to its URL, uses its own httpx fork (httpx2), and
# older releases used requests: their network errors are recognised by name, not imported.
_FOREIGN_NETWORK_ERRORS = frozenset(
    {("httpx2", "TransportError"), ("requests", "ConnectionError"), ("requests", "Timeout")}
)


class SpaceBackground(BackgroundBackend):
    name = "space"

    def __init__(self, src: str, api_name: str, token: str | None, timeout_s: float) -> None:
        self._src = src
        self._api_name = api_name if api_name.startswith("/") else f"/{api_name}"
        self._token = token
        self._timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()
        self._files = Path(tempfile.mkdtemp(prefix="closet-space-"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        # No connection here: gradio_client.Client fetches the Space's config while it is
        # built, and a sleeping Space answers slowly or with 503 for minutes. Failing at import
        # would crash-loop the instance over a remote hiccup; connecting on first use (or on
        # the warm-up ping) turns the same hiccup into a TransientError that Pub/Sub retries.
        if not settings.space:
            raise ConfigurationError("the space backend needs CLOSET_SPACE (a Space id or URL)")
        return cls(settings.space, settings.space_api, settings.hf_token, settings.remote_timeout_s)

    def remove(self, image: Image.Image) -> Image.Image:
        from gradio_client import handle_file

        client = self._connected()
        upload = self._files / f"input-{threading.get_ident()}.png"
        image.convert("RGB").save(upload, "PNG", compress_level=1)
        try:
            job = client.submit(handle_file(str(upload)), api_name=self._api_name)
            try:
                result = job.result(timeout=self._timeout_s)
            except concurrent.futures.TimeoutError:
                job.cancel()
                raise
        except Exception as exc:
            error = _map_error(exc)
            if error is None:
                raise
            if error.retryable:
                # The Space may have restarted with new endpoints: reconnect next time.
                self._forget(client)
            raise error from exc
        finally:
            upload.unlink(missing_ok=True)
        return self._cutout(result, image)

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
            raise TransientError(f"Space {self._src} unreachable: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"Space {self._src} answered {response.status_code}")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        shutil.rmtree(self._files, ignore_errors=True)

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
                self._src,
                token=self._token,
                verbose=False,
                analytics_enabled=False,
                download_files=str(self._files),
                httpx_kwargs={"timeout": httpx.Timeout(self._timeout_s, read=read_timeout)},
            )
        except Exception as exc:
            error = _map_error(exc, connecting=True)
            if error is None:
                raise
            raise error from exc

    def _forget(self, client: Any) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()

    def _cutout(self, result: Any, image: Image.Image) -> Image.Image:
        outputs: list[Image.Image] = []
        for path in _output_paths(result):
            try:
                outputs.append(imaging.open_remote(Path(path).read_bytes()))
            except (TransientError, OSError):
                continue
            finally:
                _discard(path, self._files)
        with_alpha = [
            o for o in outputs if o.mode in ("RGBA", "LA", "PA") or "transparency" in o.info
        ]
        if with_alpha:
            cutout = with_alpha[-1].convert("RGBA")
        else:
            masks = [o for o in outputs if o.mode in ("L", "1")]
            if not masks:
                raise BackendUnavailable(f"Space {self._src} returned no image with transparency")
            cutout = image.convert("RGBA")
            cutout.putalpha(masks[-1].convert("L").resize(image.size, Image.Resampling.LANCZOS))
        if cutout.size != image.size:
            cutout = cutout.resize(image.size, Image.Resampling.LANCZOS)
        return cutout


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


def _map_error(exc: BaseException, *, connecting: bool = False) -> ClosetError | None:
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

"""A local server that keeps remove.bg's contract for `POST /v1.0/removebg`.

Request: header `X-Api-Key`, multipart form with `image_file` and optional `size`, `format`.
Success: 200 with a PNG whose alpha marks bright pixels as foreground. Errors carry remove.bg's
JSON shape `{"errors": [{"title": ..., "code": ...}]}`: 400 `invalid_parameter` or
`unknown_foreground` (no bright pixel), 402 `insufficient_credits`, 403 `auth_failed`,
429 `rate_limit_exceeded` (with `Retry-After`), 5xx.
"""

from __future__ import annotations

import io
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from PIL import Image, UnidentifiedImageError

PATH = "/v1.0/removebg"
SIZES = frozenset({"auto", "preview", "small", "regular", "medium", "hd", "full", "4k", "50MP"})
FORMATS = frozenset({"auto", "png", "jpg", "zip"})
FOREGROUND_LEVEL = 128

ERRORS: dict[int, tuple[str, str]] = {
    400: ("unknown_foreground", "Could not identify foreground in image."),
    402: ("insufficient_credits", "Insufficient credits"),
    403: ("auth_failed", "API Key invalid"),
    429: ("rate_limit_exceeded", "Rate limit exceeded"),
    500: ("unknown_error", "Internal server error"),
    502: ("result_fetch_failed", "Could not fetch the result"),
    503: ("service_unavailable", "Service unavailable"),
}


@dataclass(frozen=True)
class Upload:
    """One call as the server saw it."""

    api_key: str | None
    fields: dict[str, str]
    filename: str | None
    image_size: tuple[int, int] | None


@dataclass
class FakeRemoveBg:
    """`with FakeRemoveBg(keys={"good"}) as api: api.url ...`; stops its server on exit."""

    keys: set[str] = field(default_factory=lambda: {"test-key"})
    status_by_key: dict[str, int] = field(default_factory=dict)
    result_scale: float = 1.0
    uploads: list[Upload] = field(default_factory=list)
    _fail_next: deque[tuple[int, str | None]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeRemoveBg as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.uploads)

    def fail_next(self, status: int, code: str | None = None, times: int = 1) -> None:
        """Answer the next `times` calls with `status` (and remove.bg's error `code`)."""
        with self._lock:
            self._fail_next.extend([(status, code)] * times)

    def __enter__(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval makes shutdown() return quickly (the default waits 0.5 s).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _answer(
        self, upload: Upload, image: Image.Image | None
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.uploads.append(upload)
            forced = self._fail_next.popleft() if self._fail_next else None
        if upload.api_key is None:
            return _error(403, "auth_failed", "Missing API Key")
        if upload.api_key not in self.keys and upload.api_key not in self.status_by_key:
            return _error(403, "auth_failed", "API Key invalid")
        if forced is not None:
            return _error(forced[0], forced[1])
        if upload.api_key in self.status_by_key:
            return _error(self.status_by_key[upload.api_key])
        if image is None:
            return _error(400, "invalid_parameter", "No image given or invalid image file")
        size = upload.fields.get("size", "preview")
        fmt = upload.fields.get("format", "auto")
        if size not in SIZES or fmt not in FORMATS:
            return _error(400, "invalid_parameter", f"Invalid size {size!r} or format {fmt!r}")
        cutout = _cut_out(image, self.result_scale)
        if cutout is None:
            return _error(400, "unknown_foreground")
        body = io.BytesIO()
        cutout.save(body, "PNG")
        headers = {
            "Content-Type": "image/png",
            "X-Width": str(cutout.width),
            "X-Height": str(cutout.height),
            "X-Credits-Charged": "1",
            "X-Type": "product",
        }
        return 200, headers, body.getvalue()


def _error(
    status: int, code: str | None = None, title: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    default_code, default_title = ERRORS.get(status, ("unknown_error", "Error"))
    payload = {"errors": [{"title": title or default_title, "code": code or default_code}]}
    headers = {"Content-Type": "application/json"}
    if status == 429:
        headers["Retry-After"] = "1"
    return status, headers, json.dumps(payload).encode()


def _cut_out(image: Image.Image, scale: float) -> Image.Image | None:
    alpha = image.convert("L").point(lambda v: 255 if v >= FOREGROUND_LEVEL else 0)
    if alpha.getbbox() is None:
        return None
    cutout = image.convert("RGBA")
    cutout.putalpha(alpha)
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        cutout = cutout.resize(size, Image.Resampling.NEAREST)
    return cutout


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], str | None, bytes | None]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    filename: str | None = None
    data: bytes | None = None
    if not message.is_multipart():
        return fields, filename, data
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if name == "image_file":
            filename, data = part.get_filename(), payload
        else:
            fields[name] = payload.decode()
    return fields, filename, data


def _handler_for(api: FakeRemoveBg) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self._send(404, {"Content-Type": "application/json"}, b'{"errors":[]}')
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            fields, filename, data = _parse_multipart(self.headers.get("Content-Type", ""), body)
            image = _decode(data)
            upload = Upload(
                api_key=self.headers.get("X-Api-Key"),
                fields=fields,
                filename=filename,
                image_size=image.size if image is not None else None,
            )
            self._send(*api._answer(upload, image))

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _decode(data: bytes | None) -> Image.Image | None:
    if not data:
        return None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError):
        return None
    return image

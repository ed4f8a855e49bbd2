"""The built web app (`web/dist`, from `make web`) served on loopback, with its `config.json`.

A static host serves the same two things when deployed: the build and a `config.json` next to
`index.html` that names the api and the Firebase project. Here the config also names the
emulators, so the one build talks to `closet dev`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Self

from common.emulators import HOST, EmulatorError, port_is_free

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "web" / "dist"
BUILD_HINT = "run `make web` to build it"


class _Handler(SimpleHTTPRequestHandler):
    """Files of the build; `/config.json` from memory; every answer revalidated."""

    def __init__(self, *args: Any, config: bytes, log: IO[str] | None, **kwargs: Any) -> None:
        self.config = config
        self.log = log
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/config.json":
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config)))
            self.end_headers()
            self.wfile.write(self.config)
            return
        super().do_GET()

    def end_headers(self) -> None:
        # A rebuilt page or a restarted stack (new ports in config.json) shows at once.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        if self.log is not None:
            self.log.write(f"{self.address_string()} {format % args}\n")
            self.log.flush()


class PageServer:
    """Serves `dist` and a generated `config.json` on `HOST:port` from a thread."""

    def __init__(
        self,
        config: dict[str, Any],
        port: int | None = None,
        dist: Path = DIST,
        log_file: Path | None = None,
    ) -> None:
        self.config = config
        self.port = port or 0
        self.dist = dist
        self.log_file = log_file
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._log: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    @property
    def built(self) -> bool:
        return (self.dist / "index.html").is_file()

    def start(self) -> Self:
        if not self.built:
            raise EmulatorError(f"the web app is not built ({self.dist} is missing): {BUILD_HINT}")
        if self.port and not port_is_free(HOST, self.port):
            raise EmulatorError(f"web page: port {self.port} is already in use")
        if self.log_file is not None:
            self._log = self.log_file.open("w")
        handler = partial(
            _Handler,
            config=json.dumps(self.config, indent=2).encode(),
            log=self._log,
            directory=str(self.dist),
        )
        self._server = ThreadingHTTPServer((HOST, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="closet-web", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

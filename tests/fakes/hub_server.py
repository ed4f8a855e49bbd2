"""A local server speaking the Hugging Face Hub's file protocol, for `huggingface_hub` clients.

`HEAD|GET /{repo}/resolve/{revision}/{file}` with the headers the client reads: `X-Repo-Commit`,
an `ETag` (git's blob id for small files, `X-Linked-Etag` with the SHA-256 for LFS ones) and the
size; a missing file is a 404 with `X-Error-Code: EntryNotFound`, as the Hub answers.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

LFS_SUFFIXES = (".safetensors", ".bin", ".onnx")


@dataclass
class HubRepo:
    repo_id: str
    commit: str
    files: dict[str, bytes]
    tampered: dict[str, bytes] = field(default_factory=dict)
    """Bytes served instead of a file's own, under the file's own checksum headers."""

    @classmethod
    def from_folder(cls, repo_id: str, folder: Path) -> HubRepo:
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        commit = hashlib.sha1(repr(sorted(files.items())).encode(), usedforsecurity=False)
        return cls(repo_id, commit.hexdigest(), files)


def _headers(repo: HubRepo, name: str) -> dict[str, str]:
    data = repo.files[name]
    headers = {"X-Repo-Commit": repo.commit, "Content-Length": str(len(data))}
    if name.endswith(LFS_SUFFIXES):
        headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
        headers["X-Linked-Size"] = str(len(data))
        headers["ETag"] = headers["X-Linked-Etag"]
    else:
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False)
        headers["ETag"] = f'"{blob.hexdigest()}"'
    return headers


class _Handler(BaseHTTPRequestHandler):
    server: _HubHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _find(self) -> tuple[HubRepo, str] | None:
        path = unquote(self.path.split("?", 1)[0]).lstrip("/")
        if "/resolve/" not in path:
            return None
        repo_id, rest = path.split("/resolve/", 1)
        revision, _, name = rest.partition("/")
        repo = self.server.repos.get(repo_id)
        if repo is None or revision not in ("main", repo.commit) or name not in repo.files:
            return None
        return repo, name

    def _not_found(self) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", "EntryNotFound")
        self.send_header("X-Error-Message", "Entry not found")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, with_body: bool) -> None:
        found = self._find()
        if found is None:
            self._not_found()
            return
        repo, name = found
        self.server.requested.append(self.path)
        self.send_response(200)
        for key, value in _headers(repo, name).items():
            self.send_header(key, value)
        self.end_headers()
        if with_body:
            self.server.downloads.append(name)
            self.wfile.write(repo.tampered.get(name, repo.files[name]))

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)


class _HubHTTPServer(ThreadingHTTPServer):
    repos: dict[str, HubRepo]
    downloads: list[str]
    requested: list[str]


@dataclass
class HubServer:
    url: str
    repos: dict[str, HubRepo]
    downloads: list[str]
    requested: list[str]


@contextmanager
def hub_server(*repos: HubRepo) -> Iterator[HubServer]:
    """Serve `repos` on 127.0.0.1; point `HF_ENDPOINT` at the yielded URL."""
    server = _HubHTTPServer(("127.0.0.1", 0), _Handler)
    server.repos = {repo.repo_id: repo for repo in repos}
    server.downloads = []
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield HubServer(f"http://{host!s}:{port}", server.repos, server.downloads, server.requested)
    finally:
        server.shutdown()
        server.server_close()

"""BlobStore on a folder: one subfolder per bucket, object names as relative paths."""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from common.errors import InvalidImage


class FolderBlobStore:
    def __init__(self, root: Path, buckets: Mapping[str, Path] | None = None) -> None:
        self.root = root
        self._buckets = {name: Path(path) for name, path in (buckets or {}).items()}

    def path(self, bucket: str, name: str) -> Path:
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"object name {name!r} escapes its bucket")
        base = self._buckets.get(bucket, self.root / bucket)
        return base.joinpath(*relative.parts)

    def read(self, bucket: str, name: str, *, generation: str | None = None) -> bytes:
        # A folder keeps one version per name: the generation is the caller's bookkeeping.
        try:
            return self.path(bucket, name).read_bytes()
        except FileNotFoundError:
            raise InvalidImage(f"object {bucket}/{name} does not exist") from None

    def write(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str,
        *,
        cache_control: str | None = None,
    ) -> str:
        target = self.path(bucket, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half an object.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
        return self.url(bucket, name)

    def copy(self, bucket: str, source: str, target: str) -> str:
        data = self.read(bucket, source)
        content_type = mimetypes.guess_type(source)[0] or "application/octet-stream"
        return self.write(bucket, target, data, content_type)

    def exists(self, bucket: str, name: str) -> bool:
        return self.path(bucket, name).is_file()

    def url(self, bucket: str, name: str) -> str:
        return self.path(bucket, name).resolve().as_uri()

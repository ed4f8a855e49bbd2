"""BlobStore on Cloud Storage; URLs are `gs://bucket/name`."""

from __future__ import annotations

from google.api_core.exceptions import NotFound
from google.cloud import storage  # type: ignore[attr-defined]
from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

from common.errors import InvalidImage


class GcsBlobStore:
    def __init__(self, client: storage.Client) -> None:
        self._client = client

    def read(self, bucket: str, name: str, *, generation: str | None = None) -> bytes:
        # Pinning the generation: the job processes the bytes its event announced, even if
        # the object was overwritten since.
        pinned = int(generation) if generation and generation.isdigit() else None
        try:
            blob = self._client.bucket(bucket).blob(name, generation=pinned)
            data: bytes = blob.download_as_bytes()
        except NotFound:
            raise InvalidImage(f"object {bucket}/{name} does not exist") from None
        return data

    def write(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str,
        *,
        cache_control: str | None = None,
    ) -> str:
        blob = self._client.bucket(bucket).blob(name)
        blob.cache_control = cache_control
        # Outputs go to deterministic paths with the same bytes, so a retried upload is safe
        # (the library retries uploads only when they carry a generation precondition).
        blob.upload_from_string(data, content_type=content_type, retry=DEFAULT_RETRY)
        return self.url(bucket, name)

    def copy(self, bucket: str, source: str, target: str) -> str:
        client_bucket = self._client.bucket(bucket)
        try:
            client_bucket.copy_blob(client_bucket.blob(source), client_bucket, target)
        except NotFound:
            raise InvalidImage(f"object {bucket}/{source} does not exist") from None
        return self.url(bucket, target)

    def exists(self, bucket: str, name: str) -> bool:
        found: bool = self._client.bucket(bucket).blob(name).exists()
        return found

    def url(self, bucket: str, name: str) -> str:
        return f"gs://{bucket}/{name}"

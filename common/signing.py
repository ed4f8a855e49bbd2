"""V4 signed URLs of Cloud Storage objects: the only way a client reaches a bucket.

In the cloud the api's runtime service account signs through IAM (`signBlob`, the account may
sign as itself): Cloud Run's credentials hold no private key. With `CLOSET_SIGNING_KEY` (a
service-account JSON key: `closet dev` writes a throwaway one) the key signs locally. The
signature binds the method, the object, the expiry and every header named in `headers`, so a
client cannot change the content type, the `job-id` metadata or the size limit it was given.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from common.config import Settings
from common.errors import ConfigurationError

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


class UrlSigner:
    """Signs upload and download URLs of one project's buckets."""

    def __init__(self, client: Any, key: Path | None) -> None:
        self._client = client
        self._key = key
        self._credentials: Any = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, settings: Settings) -> UrlSigner:
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

        client = storage.Client(project=settings.project)
        if settings.signing_key is not None:
            _credentials(settings.signing_key)  # a bad key file is a startup error
        return cls(client, settings.signing_key)

    def upload_url(
        self, bucket: str, name: str, content_type: str, headers: dict[str, str], ttl_s: int
    ) -> str:
        """A PUT URL that accepts exactly this object with exactly these headers."""
        return self._sign(bucket, name, "PUT", ttl_s, content_type=content_type, headers=headers)

    def download_url(self, bucket: str, name: str, ttl_s: int) -> str:
        return self._sign(bucket, name, "GET", ttl_s)

    def _sign(self, bucket: str, name: str, method: str, ttl_s: int, **extra: Any) -> str:
        blob = self._client.bucket(bucket).blob(name)
        url: str = blob.generate_signed_url(
            version="v4",
            expiration=timedelta(seconds=ttl_s),
            method=method,
            client=self._client,
            **extra,
            **self._identity(),
        )
        return url

    def _identity(self) -> dict[str, Any]:
        """How to sign: a local key, or the runtime account's access token for IAM signBlob."""
        from google.auth.credentials import Signing

        with self._lock:
            # Found on first use: on Cloud Run from the metadata server, never at build time.
            if self._credentials is None:
                self._credentials = _credentials(self._key)
            credentials = self._credentials
            if isinstance(credentials, Signing):
                return {"credentials": credentials}
            if not credentials.valid:
                from google.auth.transport.requests import Request

                credentials.refresh(Request())
            return {
                "credentials": credentials,
                "service_account_email": credentials.service_account_email,
                "access_token": credentials.token,
            }


def _credentials(key: Path | None) -> Any:
    if key is not None:
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(key), scopes=SCOPES
            )
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"CLOSET_SIGNING_KEY={key}: not a service-account key file: {exc}"
            ) from None
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as exc:
        raise ConfigurationError(
            "no credentials to sign URLs with: set CLOSET_SIGNING_KEY or run on Google Cloud "
            f"({exc})"
        ) from None
    return credentials


def write_dev_key(path: Path, project: str) -> Path:
    """A throwaway service-account key for local signing (fake-gcs-server checks no signature)."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "closet-dev",
        "private_key": pem,
        "client_email": f"closet-api@{project}.iam.gserviceaccount.com",
        "client_id": "0",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(key))
    path.chmod(0o600)
    return path

"""The remove.bg HTTP API (https://www.remove.bg/api): one POST per image, PNG back."""

from __future__ import annotations

import io
from typing import Self

import httpx
from PIL import Image

from common import imaging
from common.backends.background.base import BackgroundBackend
from common.config import Settings
from common.errors import (
    BackendUnavailable,
    ClosetError,
    ConfigurationError,
    NoGarmentFound,
    TransientError,
)

# `auto` is the highest resolution the account's credits allow (a preview, smaller, when none
# are left: the result is resized back to the input); `png` keeps the alpha channel.
_FORM = {"size": "auto", "format": "png"}


class RemoveBgBackground(BackgroundBackend):
    name = "removebg"

    def __init__(self, url: str, api_key: str, timeout_s: float) -> None:
        self._url = url
        # One client per process: warm instances reuse its connection pool.
        self._client = httpx.Client(timeout=timeout_s, headers={"X-Api-Key": api_key})

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        if not settings.removebg_api_key:
            raise ConfigurationError("the removebg backend needs CLOSET_REMOVEBG_API_KEY")
        return cls(settings.removebg_url, settings.removebg_api_key, settings.remote_timeout_s)

    def remove(self, image: Image.Image) -> Image.Image:
        upload = io.BytesIO()
        image.convert("RGB").save(upload, "PNG", compress_level=1)
        try:
            response = self._client.post(
                self._url,
                data=_FORM,
                files={"image_file": ("image.png", upload.getvalue(), "image/png")},
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"remove.bg timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"remove.bg unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise _error_for(response)
        # A 200 without a readable image is the service's fault, not the photo's: transient.
        cutout = imaging.open_remote(response.content).convert("RGBA")
        if cutout.size != image.size:
            cutout = cutout.resize(image.size, Image.Resampling.LANCZOS)
        return cutout

    def warmup(self) -> None:
        # Every call costs a credit: warming up means being ready to connect, nothing more.
        pass

    def close(self) -> None:
        self._client.close()


def _error_for(response: httpx.Response) -> ClosetError:
    """Map an error answer to the pipeline's tree: retry only what another try can fix."""
    status = response.status_code
    code, title = _first_error(response)
    detail = f"remove.bg answered {status} {code or ''}: {title or response.reason_phrase}"
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After")
        suffix = f" (retry after {retry_after} s)" if retry_after else ""
        return TransientError(detail + suffix)
    if status == 400 and code == "unknown_foreground":
        return NoGarmentFound(f"remove.bg found no foreground: {title}")
    # 402 no credits, 403 bad key, other 400s: the same request will fail the same way.
    return BackendUnavailable(detail)


def _first_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """remove.bg's error body: {"errors": [{"title": ..., "code": ..., "detail"?: ...}]}."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, None
    if not isinstance(first, dict):
        return None, None
    code, title = first.get("code"), first.get("title")
    return (
        code if isinstance(code, str) else None,
        title if isinstance(title, str) else None,
    )
